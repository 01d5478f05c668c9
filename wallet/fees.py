"""What a payment spends and what it costs, checked before anything is signed: ``send``'s three ways to choose
coins (a plain payment, ``--all`` and ``--subtract-fee``), the maximum-fee guard, and the warnings.

The fee guard (like bitcoin-cli's ``-maxtxfee``) refuses, with ``fee-too-high`` and exit 2 unless ``--force``:

- a fee above ``MAX_FEE`` (0.1 coin), whatever is sent;
- a fee above the amount the recipient gets, unless it is no more than the default fee for the transaction's
  size (``DEFAULT_FEE_RATE`` base units per byte): paying a tiny amount at the normal rate is allowed, and
  warned about.

Warnings (``send`` prints them on stderr, and under ``warnings`` with ``--json``): a payment to the wallet's
own address, and an output (the payment or the change) smaller than the fee.
"""

from __future__ import annotations

from node.types.transaction import COIN
from wallet.amounts import describe_amount
from wallet.coins import (
    DEFAULT_FEE_RATE,
    Coin,
    Selection,
    SelectionError,
    estimate_size,
    input_limit,
    select_coins,
)
from wallet.context import EXIT_FAILED, EXIT_USAGE, CliError

MAX_FEE = COIN // 10
"""The highest fee ``send`` pays without ``--force``: 0.1 coin (10,000,000 base units)."""


def choose(coins: list[Coin], amount: int | None, *, fee: int | None, fee_rate: int, sweep: bool = False,
           subtract_fee: bool = False) -> Selection:
    """The coins, fee and change of a payment; ``CliError`` with a message that names the amounts if impossible.

    ``sweep``: every coin, the amount is their total minus the fee (``amount`` is None).  ``subtract_fee``: the
    recipient gets ``amount`` minus the fee, so the wallet pays ``amount`` in all.
    """
    try:
        if sweep:
            return sweep_coins(coins, fee=fee, fee_rate=fee_rate)
        assert amount is not None
        if subtract_fee:
            return select_subtracting_fee(coins, amount, fee=fee, fee_rate=fee_rate)
        return select_coins(coins, amount, fee=fee, fee_rate=fee_rate)
    except SelectionError as exc:
        if exc.code == "insufficient-funds" and amount is not None and not subtract_fee:
            needed = exc.amount("needed")
            raise CliError(exc.code, f"insufficient funds: {describe_amount(amount)} plus a fee of "
                                     f"{describe_amount(needed - amount)} needs {describe_amount(needed)}; "
                                     f"the wallet has {describe_amount(exc.amount('available'))}, short by "
                                     f"{describe_amount(exc.amount('shortfall'))}", EXIT_FAILED,
                           **exc.details) from None
        exit_code = EXIT_USAGE if exc.code == "fee-exceeds-amount" else EXIT_FAILED
        raise CliError(exc.code, exc.message, exit_code, **exc.details) from None


def sweep_coins(coins: list[Coin], *, fee: int | None, fee_rate: int = DEFAULT_FEE_RATE) -> Selection:
    """Every coin into one output (no change): the amount is their total minus the fee."""
    limit = input_limit()
    if len(coins) > limit:
        raise SelectionError("too-many-inputs",
                             f"the wallet holds {len(coins)} coins and one transaction spends at most {limit}; "
                             f"send a part first to merge coins", inputs=len(coins), limit=limit)
    total = sum(c.amount for c in coins)
    cost = fee if fee is not None else fee_rate * estimate_size(max(len(coins), 1), 1)
    if total <= cost:
        raise SelectionError("insufficient-funds",
                             f"insufficient funds: the wallet has {describe_amount(total)}, which does not cover "
                             f"the fee of {describe_amount(cost)} with anything left to send",
                             needed=cost + 1, available=total, shortfall=cost + 1 - total)
    return Selection(tuple(coins), total - cost, cost, 0)


def select_subtracting_fee(coins: list[Coin], amount: int, *, fee: int | None,
                           fee_rate: int = DEFAULT_FEE_RATE) -> Selection:
    """Coins paying ``amount`` in all: the recipient gets ``amount`` minus the fee."""
    try:
        chosen = select_coins(coins, amount, fee=0)
    except SelectionError as exc:
        if exc.code != "insufficient-funds":
            raise
        available = exc.amount("available")
        raise SelectionError("insufficient-funds",
                             f"insufficient funds: sending {describe_amount(amount)} (the fee taken out of it) "
                             f"needs {describe_amount(amount)}; the wallet has {describe_amount(available)}, "
                             f"short by {describe_amount(amount - available)}",
                             needed=amount, available=available, shortfall=amount - available) from None
    cost = fee if fee is not None else fee_rate * estimate_size(len(chosen.inputs), 2 if chosen.change else 1)
    if cost >= amount:
        raise SelectionError("fee-exceeds-amount",
                             f"the fee of {describe_amount(cost)} is not less than the amount "
                             f"{describe_amount(amount)} it would be taken from: nothing would be left to send",
                             fee=cost, amount=amount)
    return Selection(chosen.inputs, amount - cost, cost, chosen.change)


def check_fee(selection: Selection, force: bool) -> None:
    """Refuse an unreasonable fee (``fee-too-high``, exit 2) unless ``force``."""
    if force:
        return
    normal = DEFAULT_FEE_RATE * selection.size
    if selection.fee > MAX_FEE:
        why = f"more than the maximum of {describe_amount(MAX_FEE)}"
    elif selection.fee > selection.amount and selection.fee > normal:
        why = (f"more than the {describe_amount(selection.amount)} the recipient gets (the default fee for "
               f"this transaction would be {describe_amount(normal)})")
    else:
        return
    raise CliError("fee-too-high", f"refusing to pay a fee of {describe_amount(selection.fee)}: {why}; check "
                                   f"--fee and --fee-rate, or pass --force to pay it anyway", EXIT_USAGE,
                   fee=selection.fee, amount=selection.amount, max_fee=MAX_FEE, default_fee=normal)


def warnings_for(selection: Selection, recipient: bytes, own: bytes) -> list[str]:
    """What looks like a mistake but may be meant: a self-send, outputs smaller than the fee."""
    found = []
    if recipient == own:
        found.append("the recipient is this wallet's own address: only the fee leaves the wallet")
    if selection.amount < selection.fee:
        found.append(f"the payment of {describe_amount(selection.amount)} is smaller than its fee of "
                     f"{describe_amount(selection.fee)}")
    if 0 < selection.change < selection.fee:
        found.append(f"the change of {describe_amount(selection.change)} is smaller than the fee of "
                     f"{describe_amount(selection.fee)}: spending it later costs about as much as it is worth")
    return found
