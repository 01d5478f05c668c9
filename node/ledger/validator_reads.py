"""The store's reads of the validator sets: the state after the tip, and the set of any height.

``Store`` mixes this in.  The ``V`` records (``store_layout``) hold the set
of height 1 and of every height whose set differs from the one before (a
rename counts: the records hold names); the
set of a height is the last record at or below it.  The sets of the next
two heights come from the validator state after the tip, which the commit
batch writes with every block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.ledger.errors import STORE_CORRUPT, StoreError
from node.ledger.store_layout import P_VALSET, U64
from node.ledger.validator_state import ValidatorState, decode_named_set
from node.types.validators import ValidatorSet

if TYPE_CHECKING:
    import plyvel

MAX_CACHED_SETS = 256


class ValidatorReads:
    """Validator-set reads over the store's database (``_db``), tip (``_height``) and state."""

    _db: plyvel.DB
    _height: int
    _validator_state: ValidatorState | None
    _sets_by_height: dict[int, ValidatorSet]

    @property
    def validator_state(self) -> ValidatorState | None:
        """The validator state after the tip: the sets of the next two heights, changes under way (None only
        in a store initialized without validators, as unit tests of the UTXO rules do)."""
        return self._validator_state

    def get_validators(self, height: int) -> ValidatorSet | None:
        """The validator set of ``height`` (with names), for any height from 1 to the tip + 2; None outside.

        The set of the next height carries its proposer priorities; earlier sets carry none."""
        state = self._validator_state
        if state is None or height < 1 or height > self._height + 2:
            return None
        if height == self._height + 1:
            return state.current
        if height == self._height + 2:
            return state.next
        cached = self._sets_by_height.get(height)
        if cached is not None:
            return cached
        with self._db.iterator(start=P_VALSET, stop=P_VALSET + U64.pack(height + 1), reverse=True) as it:
            entry = next(it, None)
        if entry is None:
            raise StoreError(STORE_CORRUPT, f"no validator set is stored for height {height}")
        validators = decode_named_set(entry[1])
        if len(self._sets_by_height) >= MAX_CACHED_SETS:
            self._sets_by_height.clear()
        self._sets_by_height[height] = validators
        return validators

    def _remember_decided_set(self, height: int, before: ValidatorState | None) -> None:
        """Keep the set that decided ``height``, the tip a commit just reached: ``before``'s current set (the
        state before that commit), without its proposer priorities, as ``get_validators`` reads it back (a ``V``
        record is written whenever the named set changes, a rename included, so the last record at or below
        ``height`` holds these very names; a store written before that rule may lack the record of a change
        that only renamed a member, and then reads the old name where this keeps the state's).

        Every node asks for the set of the height it has just decided (the precommits of its certificate are
        counted by it), and a new tip is never in the cache: each one cost a reverse LevelDB iterator and a
        decoding, 0.5 ms per height per validator at 50 tx/s."""
        if before is not None and before.height == height - 1:
            if len(self._sets_by_height) >= MAX_CACHED_SETS:
                self._sets_by_height.clear()
            self._sets_by_height[height] = ValidatorSet(before.current.validators)

    def validator_change_heights(self, start: int = 1, limit: int = 1000) -> list[int]:
        """Heights from ``start`` whose validator set differs from the one before (1 is always one), up to the
        tip + 2, at most ``limit`` of them: where a client walking from genesis must look."""
        heights: list[int] = []
        with self._db.iterator(include_value=False, start=P_VALSET + U64.pack(max(start, 0)),
                               stop=P_VALSET + b"\xff" * 9) as it:
            for key in it:
                height = U64.unpack_from(key, 1)[0]
                if height > self._height + 2 or len(heights) >= limit:
                    break
                heights.append(height)
        return heights
