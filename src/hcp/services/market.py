"""Market use cases: record the feed's snapshots, read the current one, price a resource."""

from __future__ import annotations

from dataclasses import replace

from hcp.domain.errors import HcpError
from hcp.domain.fleet import Site
from hcp.domain.market import MarketSnapshot
from hcp.economics import (
    DEFAULT_PRICE_SHEET,
    GpuPriceSheet,
    Profitability,
    ProfitabilityRequest,
    calculate_profitability,
)
from hcp.services.ports import Clock, UnitOfWorkFactory


class NoMarketData(HcpError):
    """No snapshot has been recorded yet: the feed has not produced its first interval."""


class MarketService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sheet: GpuPriceSheet = DEFAULT_PRICE_SHEET,
        clock: Clock | None = None,
    ) -> None:
        self._uow = uow
        self._sheet = sheet
        self._clock = clock

    def record(self, snapshot: MarketSnapshot, source: str) -> None:
        with self._uow() as uow:
            uow.market.add(snapshot, source)
            uow.commit()

    def current(self) -> tuple[MarketSnapshot, Site]:
        """The newest snapshot and the site whose node prices it (the first site). With a
        clock, the newest up to now: a sped-up run (`hcp up --speed`) stores market time ahead
        of the wall clock, which a later run must not show as current."""
        until = None if self._clock is None else self._clock.now()
        with self._uow() as uow:
            snapshot = uow.market.latest(until)
            sites = uow.fleet.sites()
        if snapshot is None:
            raise NoMarketData("no market snapshot recorded yet")
        if not sites:
            raise NoMarketData("no site is provisioned")
        return snapshot, sites[0]

    def profitability(
        self, request: ProfitabilityRequest
    ) -> tuple[Profitability, MarketSnapshot, Site]:
        """The seed's profitability calculation at the current prices and PUE of the first site."""
        snapshot, site = self.current()
        priced = replace(request, pue=site.pue)
        return calculate_profitability(priced, snapshot, site.node, self._sheet), snapshot, site
