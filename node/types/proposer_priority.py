"""Proposer priorities: CometBFT's weighted round robin, as arithmetic on a list of integers.

Every step each validator's priority grows by its power, the one with the
highest priority proposes and loses the total power; ties go to the lower
address.  Before each step priorities are rescaled so their spread stays
within twice the total power, and centred on zero (CometBFT's
``IncrementProposerPriority``).  When the set changes, members keep their
priority and a newcomer starts at -1.125 times the new total power
(``merge_priorities``), so a validator that joins is neither favoured nor
starved.  Shared by consensus (who proposes) and the ledger (the priorities
are replicated state, carried from height to height).
"""

from __future__ import annotations

PRIORITY_WINDOW_SIZE_FACTOR = 2


def _truncating_div(a: int, b: int) -> int:
    """Go's integer division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def rescale_priorities(priorities: list[int], diff_max: int) -> None:
    """Shrink the spread of priorities to at most ``diff_max`` (CometBFT ``RescalePriorities``)."""
    diff = max(priorities) - min(priorities)
    if diff_max > 0 and diff > diff_max:
        ratio = (diff + diff_max - 1) // diff_max
        for i, p in enumerate(priorities):
            priorities[i] = _truncating_div(p, ratio)


def center_priorities(priorities: list[int]) -> None:
    """Subtract the (floored) average so priorities stay around zero (``shiftByAvgProposerPriority``)."""
    avg = sum(priorities) // len(priorities)
    if avg:
        for i, p in enumerate(priorities):
            priorities[i] = p - avg


def advance_priorities(priorities: list[int], powers: tuple[int, ...], total: int) -> int:
    """One proposer step in place; returns the index (address order) of the chosen validator."""
    rescale_priorities(priorities, PRIORITY_WINDOW_SIZE_FACTOR * total)
    center_priorities(priorities)
    best = 0
    for i, power in enumerate(powers):
        p = priorities[i] + power
        priorities[i] = p
        # Strictly greater: on a tie the earlier (lower) address keeps the slot.
        if p > priorities[best]:
            best = i
    priorities[best] -= total
    return best


def newcomer_priority(total_power: int) -> int:
    """Where a validator new to the set starts: -(total + total/8), CometBFT's -1.125 x the new total."""
    return -(total_power + (total_power >> 3))


def merge_priorities(old: dict[bytes, int], addresses: tuple[bytes, ...], total_power: int) -> tuple[int, ...]:
    """Priorities for a new set (``addresses`` in address order): members keep ``old[address]``, newcomers
    start at ``newcomer_priority(total_power)``; the next step rescales and centres them."""
    start = newcomer_priority(total_power)
    return tuple(old.get(address, start) for address in addresses)
