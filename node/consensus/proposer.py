"""Proposer choice: CometBFT's weighted round robin.

Every step each validator's priority grows by its power, the one with the
highest priority proposes and loses the total power; ties go to the lower
address.  Before each step priorities are rescaled so their spread stays
within twice the total power, and centred on zero (CometBFT's
``IncrementProposerPriority``).  A validator therefore proposes in proportion
to its power, and no node needs any state beyond the validator set.

The schedule is a pure function of the set.  Starting from all-zero
priorities (the genesis state), height h's round 0 is chosen by the h-th
step, and round r of a height takes r further steps from that height's
priorities, i.e. the (h + r)-th step of one sequence.  This matches CometBFT
when rounds advance one at a time; unlike CometBFT the result does not depend
on which rounds a node happened to skip, so every node agrees on it.

From the zero state the sequence is periodic in practice: after total-power
steps every validator has proposed exactly its power's share and all
priorities are back to zero.  The period is detected (not assumed) within
``PERIOD_SEARCH_LIMIT`` steps, after which any (height, round) costs one
lookup; for a set with a larger total power, checkpoints every
``CHECKPOINT_EVERY`` steps bound the work to that many steps.

Priorities are Python integers; CometBFT clips them to int64, which cannot
bind here because the total power is capped at ``MAX_TOTAL_POWER``.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from node.types.proposer_priority import (  # noqa: F401 (re-exported: the consensus view of them)
    PRIORITY_WINDOW_SIZE_FACTOR,
    advance_priorities,
    center_priorities,
    rescale_priorities,
)
from node.types.validators import ValidatorSet

PERIOD_SEARCH_LIMIT = 1 << 16
CHECKPOINT_EVERY = 1024
MAX_CACHED_SETS = 32


class _Schedule:
    """The step sequence of one validator set, computed lazily."""

    def __init__(self, validators: ValidatorSet):
        self.addresses = validators.addresses
        self.powers = tuple(v.power for v in validators)
        self.total = validators.total_power
        self.zero = [0] * len(self.powers)
        self.prefix: list[int] = []
        """Chosen index of steps 1..len(prefix)."""
        self.state = list(self.zero)
        """Priorities after len(prefix) steps."""
        self.period: int | None = None
        self.checkpoints: dict[int, tuple[int, ...]] = {0: tuple(self.zero)}
        """Step count -> priorities after it, every CHECKPOINT_EVERY steps (for sets without a short period)."""
        self.checkpoint_steps: list[int] = [0]
        self.latest: tuple[int, tuple[int, ...]] = (0, tuple(self.zero))
        """The last step computed past the prefix, for cheap sequential access."""

    def _checkpoint(self, step: int, state: list[int]) -> None:
        if step not in self.checkpoints:
            self.checkpoints[step] = tuple(state)
            bisect.insort(self.checkpoint_steps, step)

    def _extend_prefix(self, upto: int) -> None:
        while len(self.prefix) < upto and self.period is None and len(self.prefix) < PERIOD_SEARCH_LIMIT:
            self.prefix.append(advance_priorities(self.state, self.powers, self.total))
            if self.state == self.zero:
                self.period = len(self.prefix)
            elif len(self.prefix) % CHECKPOINT_EVERY == 0:
                self._checkpoint(len(self.prefix), self.state)

    def chosen_at(self, step: int) -> int:
        """Index chosen by the ``step``-th step (1-based)."""
        self._extend_prefix(step)
        if self.period is not None:
            return self.prefix[(step - 1) % self.period]
        if step <= len(self.prefix):
            return self.prefix[step - 1]
        start = self.checkpoint_steps[bisect.bisect_left(self.checkpoint_steps, step) - 1]
        priorities = self.checkpoints[start]
        if start < self.latest[0] < step:
            start, priorities = self.latest
        state = list(priorities)
        chosen = -1
        for s in range(start + 1, step + 1):
            chosen = advance_priorities(state, self.powers, self.total)
            if s % CHECKPOINT_EVERY == 0:
                self._checkpoint(s, state)
        self.latest = (step, tuple(state))
        return chosen


_SCHEDULES: OrderedDict[bytes, _Schedule] = OrderedDict()
_LOCK = threading.Lock()


def proposer_for(validators: ValidatorSet, height: int, round_: int) -> bytes:
    """Address of the proposer of (height, round); heights start at 1, rounds at 0."""
    if height < 1 or round_ < 0:
        raise ValueError("height starts at 1 and round at 0")
    if validators.priorities is not None:
        return proposer_from_priorities(validators, round_)
    key = validators.hash  # commits to the keys (so the addresses) and powers, in address order
    with _LOCK:
        schedule = _SCHEDULES.get(key)
        if schedule is None:
            schedule = _SCHEDULES[key] = _Schedule(validators)
            while len(_SCHEDULES) > MAX_CACHED_SETS:
                _SCHEDULES.popitem(last=False)
        else:
            _SCHEDULES.move_to_end(key)
        return schedule.addresses[schedule.chosen_at(height + round_)]


def proposer_from_priorities(validators: ValidatorSet, round_: int) -> bytes:
    """Proposer of round ``round_`` of the height whose priorities ``validators`` carries: r+1 steps on.

    This is how a node whose validator set changes chooses (the ledger carries the priorities from height to
    height, ``node.ledger.validator_state``); for a set that never changed from genesis it agrees with the
    schedule from zero above, since a height's priorities are then the ones after height-1 steps.  The
    choices of one height are computed once and extended as later rounds are asked for."""
    priorities = validators.priorities or ()
    key = (validators.hash, priorities)
    with _LOCK:
        entry = _HEIGHT_SCHEDULES.get(key)
        if entry is None:
            entry = _HEIGHT_SCHEDULES[key] = ([], list(priorities))
            while len(_HEIGHT_SCHEDULES) > MAX_CACHED_SETS:
                _HEIGHT_SCHEDULES.popitem(last=False)
        else:
            _HEIGHT_SCHEDULES.move_to_end(key)
        chosen, state = entry
        if len(chosen) <= round_:
            powers = tuple(v.power for v in validators)
            while len(chosen) <= round_:
                chosen.append(advance_priorities(state, powers, validators.total_power))
        return validators.validators[chosen[round_]].address


_HEIGHT_SCHEDULES: OrderedDict[tuple[bytes, tuple[int, ...]], tuple[list[int], list[int]]] = OrderedDict()
"""(set hash, a height's priorities) -> (index chosen in each round so far, priorities after those rounds)."""
