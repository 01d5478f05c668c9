"""Coin selection: which unspent outputs pay for a transfer, the fee, and the change.

Largest coins first, so a payment spends as few inputs as it can (fewer bytes,
lower fee); the change goes back to the sender as a second output.  The fee is
either given, or the fee rate (base units per byte) times the exact encoded
size, which is a function of the input and output counts alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from node.errors import CodedError
from node.types.transaction import MAX_SUPPLY, MAX_TX_BYTES, MAX_TX_INPUTS, TXID_SIZE, OutPoint

DEFAULT_FEE_RATE = 10
"""Base units per encoded byte when no fee is given (a one-input payment costs about 2,000)."""
INPUT_BYTES = TXID_SIZE + 4 + PUBLIC_KEY_SIZE + SIGNATURE_SIZE
OUTPUT_BYTES = ADDRESS_SIZE + 8
FIXED_BYTES = 1 + 4 + 4
"""Tag byte and the two counts."""


def estimate_size(n_inputs: int, n_outputs: int) -> int:
    """The exact encoded size of a signed transaction with these counts."""
    return FIXED_BYTES + n_inputs * INPUT_BYTES + n_outputs * OUTPUT_BYTES


@dataclass(frozen=True)
class Coin:
    """An unspent output the wallet may spend."""

    outpoint: OutPoint
    """Where it is."""
    amount: int
    """Base units."""
    height: int = 0
    """Block that created it."""


@dataclass(frozen=True)
class Selection:
    """What a transfer spends and creates."""

    inputs: tuple[Coin, ...]
    """Coins spent."""
    amount: int
    """Paid to the recipient."""
    fee: int
    """Inputs minus outputs."""
    change: int
    """Back to the sender (0: no change output)."""

    @property
    def total_in(self) -> int:
        return sum(c.amount for c in self.inputs)

    @property
    def size(self) -> int:
        return estimate_size(len(self.inputs), 2 if self.change else 1)


class SelectionError(CodedError):
    """A transfer the wallet's coins cannot pay for; ``code`` is stable, ``details`` are amounts."""

    def amount(self, key: str) -> int:
        """One of the amounts in ``details`` (``needed``, ``available``, ``shortfall``), in base units."""
        value = self.details[key]
        if not isinstance(value, int):
            raise TypeError(f"{key} is not an amount: {value!r}")
        return value


def input_limit(max_inputs: int = MAX_TX_INPUTS) -> int:
    """The most inputs one transaction may spend: the input cap, and the byte limit with room for two outputs."""
    return min(max_inputs, (MAX_TX_BYTES - estimate_size(0, 2)) // INPUT_BYTES)


def _fee(fixed: int | None, rate: int, n_in: int, n_out: int) -> int:
    return fixed if fixed is not None else rate * estimate_size(n_in, n_out)


def select_coins(coins: list[Coin], amount: int, *, fee: int | None = None, fee_rate: int = DEFAULT_FEE_RATE,
                 max_inputs: int = MAX_TX_INPUTS) -> Selection:
    """Pick coins paying ``amount`` plus the fee; raise SelectionError with the shortfall if they cannot."""
    if not 0 < amount <= MAX_SUPPLY:
        raise SelectionError("bad-amount", "amount must be more than zero and at most the supply limit")
    if fee is not None and not 0 <= fee <= MAX_SUPPLY:
        raise SelectionError("bad-fee", "fee must be between zero and the supply limit")
    if fee_rate < 0:
        raise SelectionError("bad-fee", "fee rate must not be negative")
    ordered = sorted(coins, key=lambda c: (-c.amount, c.height, c.outpoint.txid, c.outpoint.index))
    limit = input_limit(max_inputs)
    chosen: list[Coin] = []
    total = 0
    for coin in ordered[:limit]:
        chosen.append(coin)
        total += coin.amount
        n = len(chosen)
        with_change = _fee(fee, fee_rate, n, 2)
        if total > amount + with_change:
            return Selection(tuple(chosen), amount, with_change, total - amount - with_change)
        without_change = _fee(fee, fee_rate, n, 1)
        if total >= amount + without_change:
            # no room for a change output worth having: the few base units left over go to the fee
            return Selection(tuple(chosen), amount, total - amount, 0)
    available = sum(c.amount for c in coins)
    if len(ordered) > limit:
        raise SelectionError(
            "too-many-inputs",
            f"paying this would need more than {limit} inputs, the most one transaction can hold; "
            f"send a smaller amount first to merge coins", inputs=len(ordered), limit=limit)
    needed = amount + _fee(fee, fee_rate, max(len(ordered), 1), 1)
    raise SelectionError(
        "insufficient-funds",
        f"insufficient funds: sending {amount} base units plus a fee of {needed - amount} needs {needed}, "
        f"the wallet has {available}; short by {needed - available} base units",
        needed=needed, available=available, shortfall=needed - available)
