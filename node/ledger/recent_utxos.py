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

DEFAULT_MAX_ENTRIES = 131_072
"""About 270 bytes an entry (outpoint tuple, entry object, dict links; txid and address bytes shared): 35 MB
when full, 22 MB more than the 50,000 it was.

An output stays while fewer than this many newer entries are held.  When a workload's spend chains each
spend their last change output in turn (a transfer adds two outputs and spends one), that is about twice
the number of chains, whatever the rate: the bench's ``--max`` runs 64,000 chains (8 s of its default
8,000 tx/s rate cap).  Replaying that pattern (``scripts/recent_utxos_misses.py``, turns up to a tenth
of a round late): 50,000 and 65,536 entries miss every spend, 131,072 miss 10% (31% with turns half a
round late) and 147,456 none.  A miss is a LevelDB read, about 3 us more (more on a large store), twice
per node (admission and execution).  Memory decides against more: with a million genesis outputs and
163,840 entries a node peaked at 290 MB of its 300 (bench at 1,500 tx/s for 150 s)."""


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
