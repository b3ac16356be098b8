"""Rounding rules for billing: one rule (ROUND_HALF_UP), three steps (cents, price, quantity).

Why ROUND_HALF_UP (a half rounds away from zero): it is the commercial rule customers, auditors
and spreadsheets (ROUND in Excel and Google Sheets) apply, so anyone re-computing a line by hand
gets our number. Banker's rounding (ROUND_HALF_EVEN) only pays off when many rounded values are
summed; an invoice rounds money once per line, and metered quantities are rounded so that their
errors telescope instead of adding up (see `micro_units` and `metering`), so its bias would
buy nothing.

Steps, chosen to fit the storage columns (`Numeric(18, 6)`) without a second rounding there:
- money on an invoice (line amounts, totals): cents, 0.01 USD;
- unit prices: 0.0001 USD per unit (GPU clouds quote sub-cent GPU-hour prices);
- quantities (GPU-hours, kWh): 0.000001 (a micro-GPU-hour is 3.6 ms of one GPU).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from hcp.domain.errors import ValidationError

ROUNDING = ROUND_HALF_UP
CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
QUANTITY_STEP = Decimal("0.000001")
MAX_QUANTITY = Decimal(10) ** 12  # Numeric(18, 6) holds 12 digits before the point
# 50 digits keep every product and sum billing makes exact; the thread's own context (which a
# caller may have changed) never decides a bill.
_CONTEXT = Context(prec=50, rounding=ROUNDING, traps=[InvalidOperation, DivisionByZero, Overflow])


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A block whose Decimal arithmetic uses billing's own 50-digit context."""
    return localcontext(_CONTEXT)


def round_money(amount_usd: Decimal) -> Decimal:
    """`amount_usd` rounded to cents, a half cent away from zero."""
    return amount_usd.quantize(CENT, rounding=ROUNDING, context=_CONTEXT)


def round_price(price_usd: Decimal) -> Decimal:
    """A unit price in USD rounded to 0.0001, a half step away from zero."""
    return price_usd.quantize(PRICE_STEP, rounding=ROUNDING, context=_CONTEXT)


def round_quantity(quantity: Decimal) -> Decimal:
    """A metered quantity (GPU-hours, kWh) rounded to 0.000001, a half step away from zero."""
    return quantity.quantize(QUANTITY_STEP, rounding=ROUNDING, context=_CONTEXT)


def micro_units(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator millionths, rounded half up in exact integer arithmetic, as a
    Decimal with six places: `micro_units(1, 3)` is 0.000000, `micro_units(5, 3)` 0.000002.

    Integer arithmetic keeps the result independent of the thread's decimal context.
    """
    if denominator <= 0 or numerator < 0:
        raise ValueError(f"micro_units needs numerator >= 0 < denominator, got {numerator}")
    whole, rest = divmod(numerator, denominator)
    if 2 * rest >= denominator:
        whole += 1
    return Decimal(whole).scaleb(-6)


def to_decimal(value: Decimal | float | int, field: str) -> Decimal:
    """`value` as a finite Decimal; a float goes through `str`, so 40.1 becomes Decimal('40.1')
    and not its binary expansion. NaN and infinities raise ValidationError(`field`)."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    else:
        number = Decimal(str(value))
    if not number.is_finite():
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    return number
