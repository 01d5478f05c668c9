"""The unspent outputs the last blocks created, kept in memory beside LevelDB.

Outputs are usually spent soon after they are created (change goes on to pay
again), and each spend is looked up twice per node: when the mempool admits
it and when its block executes.  ``RecentUtxos`` answers those lookups
without a LevelDB read.  It mirrors committed state only: ``apply`` is
called with a block's result after its batch is written (created outputs
in, spent ones out), so an entry it holds is unspent at the store's tip.
Bounded: past ``max_entries`` the oldest are forgotten (LevelDB still has
them).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from node.ledger.state import UtxoEntry
from node.types.transaction import OutPoint

DEFAULT_MAX_ENTRIES = 50_000


class RecentUtxos:
    """Committed unspent outputs created by recent blocks, oldest forgotten first."""

    __slots__ = ("max_entries", "_entries")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: OrderedDict[OutPoint, UtxoEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, outpoint: OutPoint) -> UtxoEntry | None:
        """The unspent output at ``outpoint`` if a recent block created it (None says nothing otherwise)."""
        return self._entries.get(outpoint)

    def apply(self, spent: Iterable[tuple[OutPoint, UtxoEntry]], created: Iterable[tuple[OutPoint, UtxoEntry]]) -> None:
        """A block whose result spent ``spent`` and created ``created`` is now committed."""
        entries = self._entries
        for outpoint, _entry in spent:
            entries.pop(outpoint, None)
        for outpoint, entry in created:
            entries[outpoint] = entry
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
