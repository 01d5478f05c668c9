"""Amounts as people type and read them: whole coins with up to eight decimals,
or base units (1 coin = 100,000,000 base units)."""

from __future__ import annotations

import re

from node.errors import CodedError
from node.types.transaction import COIN, MAX_SUPPLY

DECIMALS = 8
_COIN_PATTERN = re.compile(r"(\d*)(?:\.(\d*))?")


class AmountError(CodedError, ValueError):
    """An amount that cannot be used; ``code`` is stable."""


def parse_amount(text: str, base_units: bool = False, allow_zero: bool = False) -> int:
    """Base units from ``"1.5"`` (coins) or, with ``base_units``, from ``"150000000"``."""
    if not isinstance(text, str):
        raise AmountError("bad-amount", "amount must be text")
    raw = text.strip().replace("_", "")
    if base_units:
        if not raw.isdigit() or not raw.isascii():
            raise AmountError("bad-amount", f"{text!r} is not a whole number of base units")
        value = int(raw)
    else:
        match = _COIN_PATTERN.fullmatch(raw)
        whole, fraction = (match.group(1), match.group(2) or "") if match else ("", "")
        if not match or not (whole or fraction) or not raw.isascii():
            raise AmountError("bad-amount", f"{text!r} is not an amount: write coins like 1.5 "
                                            f"(or base units with --base-units)")
        if len(fraction) > DECIMALS:
            raise AmountError("bad-amount", f"{text!r} has {len(fraction)} decimal places; "
                                            f"a coin divides into at most {DECIMALS}")
        value = int(whole or "0") * COIN + int(fraction.ljust(DECIMALS, "0") or "0")
    if value == 0 and not allow_zero:
        raise AmountError("bad-amount", "amount must be more than zero")
    if value > MAX_SUPPLY:
        raise AmountError("bad-amount", f"{text!r} is more than the total supply limit "
                                        f"({format_coins(MAX_SUPPLY)} coins)")
    return value


def format_coins(base_units: int) -> str:
    """``150000000`` -> ``"1.5"``; exact, no rounding."""
    sign = "-" if base_units < 0 else ""
    whole, fraction = divmod(abs(base_units), COIN)
    text = f"{whole:,}"
    if fraction:
        text += "." + f"{fraction:0{DECIMALS}d}".rstrip("0")
    return sign + text


def describe_amount(base_units: int) -> str:
    """Whole units and base units together, e.g. ``1.5 coins (150000000 base units)``; ``1 coin`` and
    ``1 base unit`` in the singular."""
    coins = "coin" if base_units == COIN else "coins"
    units = "base unit" if base_units == 1 else "base units"
    return f"{format_coins(base_units)} {coins} ({base_units} {units})"


def plural(count: int, noun: str) -> str:
    """``1 input``, ``2 inputs``: a count with its noun in the right number (nouns that add an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def amount_json(base_units: int) -> dict:
    """The JSON form used by the REST API too."""
    return {"base_units": base_units, "coins": f"{base_units // COIN}.{base_units % COIN:08d}"}
