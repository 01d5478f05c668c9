"""How the explorer's templates write amounts, times and hashes (Jinja2 filters)."""

from __future__ import annotations

import time

from node.crypto import encode_address
from node.types.transaction import COIN


def format_coins(amount: int | None) -> str:
    """Base units as coins with all eight decimals (``1.50000000``); a dash when the amount is not known."""
    if amount is None:
        return "—"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}{amount // COIN:,}.{amount % COIN:08d}"


def format_signed_coins(amount: int) -> str:
    """A signed amount (``+1.00000000`` received, ``-0.50000000`` sent)."""
    return ("+" if amount > 0 else "") + format_coins(amount)


def format_time(time_ms: int | None) -> str:
    """Unix milliseconds as a UTC date and time to the millisecond."""
    if time_ms is None:
        return "—"
    seconds, millis = divmod(int(time_ms), 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d} UTC"


def format_age(time_ms: int | None, now_ms: int) -> str:
    """How long before ``now_ms`` a time was, roughly (``3 s ago``, ``5 min ago``)."""
    if time_ms is None:
        return "—"
    seconds = max(0, (now_ms - int(time_ms)) // 1000)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def shorten_hex(value: str, keep: int = 10) -> str:
    """A long hex string cut to its first ``keep`` and last six characters."""
    return value if len(value) <= keep + 8 else f"{value[:keep]}…{value[-6:]}"


FILTERS = {"coins": format_coins, "signed_coins": format_signed_coins, "when": format_time, "short": shorten_hex,
           "address": encode_address}
"""The filters every explorer template can use."""
