"""Bitcoin network economics: block subsidy, expected BTC per TH/s per day, and hashprice."""

from __future__ import annotations

from datetime import UTC, datetime

from hcp.domain.market import MarketSnapshot

# The protocol targets one block every 10 minutes.
BLOCKS_PER_DAY = 144

# Mining one block takes difficulty × 2^32 hashes on average (the protocol's definition).
_HASHES_PER_DIFFICULTY = 2**32
_HASHES_PER_TH = 10**12
_SECONDS_PER_DAY = 86_400

# (first block time, subsidy in BTC from then on); times are the halving blocks' header
# timestamps (210,000; 420,000; 630,000; 840,000). Later halvings are not scheduled here
# because their dates are not known yet.
_SUBSIDY_SCHEDULE: tuple[tuple[datetime, float], ...] = (
    (datetime(2012, 11, 28, 15, 24, 38, tzinfo=UTC), 25.0),
    (datetime(2016, 7, 9, 16, 46, 13, tzinfo=UTC), 12.5),
    (datetime(2020, 5, 11, 19, 23, 43, tzinfo=UTC), 6.25),
    (datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC), 3.125),
)
_GENESIS_SUBSIDY_BTC = 50.0


def block_subsidy_btc(at: datetime) -> float:
    """The block subsidy in BTC of a block mined at `at` (timezone-aware)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"block_subsidy_btc needs a timezone-aware datetime, got {at!r}")
    subsidy_btc = _GENESIS_SUBSIDY_BTC
    for starts_at, halved_btc in _SUBSIDY_SCHEDULE:
        if at >= starts_at:
            subsidy_btc = halved_btc
    return subsidy_btc


def subsidy_changes() -> tuple[datetime, ...]:
    """The moments the block subsidy changed (the halvings known here), in time order."""
    return tuple(starts_at for starts_at, _ in _SUBSIDY_SCHEDULE)


def btc_per_ths_day(difficulty: float, fees_btc_per_day: float, subsidy_btc: float) -> float:
    """Expected BTC earned by 1 TH/s over one day, before pool fees.

    86400 × 10^12 hashes a day, each wins a block with probability 1 / (difficulty × 2^32),
    and a block pays the subsidy plus the average fees of one block.
    """
    if difficulty <= 0:
        raise ValueError(f"difficulty must be positive, got {difficulty}")
    hashes_per_day = _SECONDS_PER_DAY * _HASHES_PER_TH
    blocks_won_per_day = hashes_per_day / (difficulty * _HASHES_PER_DIFFICULTY)
    return blocks_won_per_day * (subsidy_btc + fees_btc_per_day / BLOCKS_PER_DAY)


def hashprice_usd_per_ths_day(
    difficulty: float, fees_btc_per_day: float, btc_usd: float, at: datetime
) -> float:
    """Hashprice in USD per TH/s per day at `at` (timezone-aware), before pool fees."""
    subsidy_btc = block_subsidy_btc(at)
    return btc_per_ths_day(difficulty, fees_btc_per_day, subsidy_btc) * btc_usd


def snapshot_hashprice(snapshot: MarketSnapshot) -> float:
    """Hashprice in USD per TH/s per day from a market snapshot, before pool fees."""
    return hashprice_usd_per_ths_day(
        snapshot.difficulty, snapshot.fees_btc_per_day, snapshot.btc_usd, snapshot.at
    )
