"""Proposer choice: CometBFT's weighted round robin.

Every step each validator's priority grows by its power, the one with the
highest priority proposes and loses the total power; ties go to the lower
address.  Before each step priorities are rescaled so their spread stays
within twice the total power, and centred on zero (CometBFT's
``IncrementProposerPriority``).  A validator therefore proposes in proportion
to its power, and no node needs any state beyond the validator set.

The schedule is a pure function of the set: the proposer of (height, round 0)
is chosen by the height-th step from all-zero priorities (the genesis state),
and round r of a height takes r further steps from that height's priorities.
This matches CometBFT when rounds advance one at a time; unlike CometBFT the
result does not depend on which rounds a node happened to skip, so every node
agrees on it.  Results are cached per set (checkpoints every
``CHECKPOINT_EVERY`` heights, plus the latest height and its rounds), so
asking for consecutive heights costs one step each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from node.consensus.validators import ValidatorSet

PRIORITY_WINDOW_SIZE_FACTOR = 2
CHECKPOINT_EVERY = 1024
MAX_CACHED_SETS = 32
MAX_CACHED_ROUND_HEIGHTS = 8

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)


def _clip(value: int) -> int:
    return _INT64_MAX if value > _INT64_MAX else _INT64_MIN if value < _INT64_MIN else value


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
    for i, p in enumerate(priorities):
        priorities[i] = _clip(p - avg)


def advance_priorities(priorities: list[int], powers: tuple[int, ...], total: int) -> int:
    """One proposer step in place; returns the index (address order) of the chosen validator."""
    rescale_priorities(priorities, PRIORITY_WINDOW_SIZE_FACTOR * total)
    center_priorities(priorities)
    best = 0
    for i, power in enumerate(powers):
        p = _clip(priorities[i] + power)
        priorities[i] = p
        # Strictly greater: on a tie the earlier (lower) address keeps the slot.
        if p > priorities[best]:
            best = i
    priorities[best] = _clip(priorities[best] - total)
    return best


class _Schedule:
    """Cached priorities for one validator set."""

    def __init__(self, validators: ValidatorSet):
        self.addresses = validators.addresses
        self.powers = tuple(v.power for v in validators)
        self.total = validators.total_power
        # height -> (priorities after `height` steps, index chosen by the last step); 0 is genesis.
        self.checkpoints: dict[int, tuple[tuple[int, ...], int]] = {0: ((0,) * len(self.powers), -1)}
        self.latest: tuple[int, tuple[int, ...], int] = (0, (0,) * len(self.powers), -1)
        # height -> (priorities after the last computed round, proposers for rounds 0..k)
        self.rounds: OrderedDict[int, tuple[list[int], list[int]]] = OrderedDict()

    def _height_state(self, height: int) -> tuple[tuple[int, ...], int]:
        """Priorities after `height` steps and the index chosen by the last of them."""
        latest_h, latest_p, latest_c = self.latest
        if latest_h == height:
            return latest_p, latest_c
        if latest_h < height:
            start_h, start_p = latest_h, latest_p
        else:
            start_h = max(h for h in self.checkpoints if h <= height)
            start_p, chosen = self.checkpoints[start_h]
            if start_h == height:
                return start_p, chosen
        priorities = list(start_p)
        chosen = -1
        for h in range(start_h + 1, height + 1):
            chosen = advance_priorities(priorities, self.powers, self.total)
            if h % CHECKPOINT_EVERY == 0:
                self.checkpoints[h] = (tuple(priorities), chosen)
        state = tuple(priorities)
        self.latest = (height, state, chosen)
        return state, chosen

    def proposer_index(self, height: int, round_: int) -> int:
        entry = self.rounds.get(height)
        if entry is None:
            state, chosen = self._height_state(height)
            entry = (list(state), [chosen])
            self.rounds[height] = entry
            while len(self.rounds) > MAX_CACHED_ROUND_HEIGHTS:
                self.rounds.popitem(last=False)
        else:
            self.rounds.move_to_end(height)
        priorities, chosen_by_round = entry
        while len(chosen_by_round) <= round_:
            chosen_by_round.append(advance_priorities(priorities, self.powers, self.total))
        return chosen_by_round[round_]


_SCHEDULES: OrderedDict[bytes, _Schedule] = OrderedDict()
_LOCK = threading.Lock()


def proposer_for(validators: ValidatorSet, height: int, round_: int) -> bytes:
    """Address of the proposer of (height, round); heights start at 1, rounds at 0."""
    if height < 1 or round_ < 0:
        raise ValueError("height starts at 1 and round at 0")
    with _LOCK:
        schedule = _SCHEDULES.get(validators.hash)
        if schedule is None or schedule.addresses != validators.addresses:
            schedule = _Schedule(validators)
            _SCHEDULES[validators.hash] = schedule
            while len(_SCHEDULES) > MAX_CACHED_SETS:
                _SCHEDULES.popitem(last=False)
        else:
            _SCHEDULES.move_to_end(validators.hash)
        return schedule.addresses[schedule.proposer_index(height, round_)]
