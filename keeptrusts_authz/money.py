"""Money at the edges: decimal currency units in, integer micro-units inside.

Amounts are stored and computed as integer micros (1 unit = 1_000_000 micros). Only the API, CLI
and reports speak decimals, and they convert through this module so the rules live in one place.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, DecimalException

MICROS_PER_UNIT = 1_000_000
_MICRO = Decimal(1) / MICROS_PER_UNIT
# Far above any real amount (10^15 units), far below what makes Decimal arithmetic expensive:
# "1e999999" must be refused before it is ever multiplied.
_MAX_ADJUSTED_EXPONENT = 15
_MAX_TEXT = 64


class AmountError(ValueError):
    """An amount that cannot be accepted; the message names the problem (never the caller)."""


def parse_amount(value: object, *, field: str = "amount", allow_zero: bool = False) -> int:
    """Convert a decimal amount in currency units (str, int or Decimal; never float) to micros.

    Rejects booleans, floats that lost precision, non-numeric strings, NaN, infinities, negative
    values, zero (unless ``allow_zero``) and more than 6 decimal places.
    """
    if isinstance(value, bool) or value is None:
        raise AmountError(f"{field}: must be a decimal number, got {type(value).__name__}")
    if isinstance(value, float):
        # JSON numbers reach us as floats from some decoders; repr() is the shortest exact form.
        value = repr(value)
    if isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, Decimal):
        dec = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise AmountError(f"{field}: must be a decimal number, got an empty string")
        if len(text) > _MAX_TEXT:
            raise AmountError(f"{field}: too long for an amount ({len(text)} characters)")
        try:
            dec = Decimal(text)
        except DecimalException:
            raise AmountError(f"{field}: not a decimal number: {text[:32]!r}") from None
    else:
        raise AmountError(f"{field}: must be a decimal number, got {type(value).__name__}")
    if not dec.is_finite():
        raise AmountError(f"{field}: must be a finite number")
    if dec != 0 and dec.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise AmountError(f"{field}: too large")
    if dec.is_signed() and dec != 0:
        raise AmountError(f"{field}: must not be negative")
    try:
        if dec != dec.quantize(_MICRO):
            raise AmountError(f"{field}: at most 6 decimal places are allowed")
        micros = int(dec * MICROS_PER_UNIT)
    except DecimalException:
        raise AmountError(f"{field}: not a usable amount") from None
    if micros == 0 and not allow_zero:
        raise AmountError(f"{field}: must be greater than zero")
    return micros


def format_micros(micros: int, places: int = 2) -> str:
    """Render micros as a decimal string with at least ``places`` decimals (exact, no rounding)."""
    dec = Decimal(micros) / MICROS_PER_UNIT
    text = f"{dec:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    frac = frac.ljust(places, "0")
    return f"{whole}.{frac}" if frac else whole


def ceil_micros(value: Decimal) -> int:
    """Round a cost in micros up to the next whole micro."""
    return int(value.to_integral_value(rounding=ROUND_CEILING))
