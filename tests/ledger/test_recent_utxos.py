"""The in-memory mirror of recently created unspent outputs (``node.ledger.recent_utxos``)."""

from __future__ import annotations

from node.ledger.recent_utxos import RecentUtxos
from node.ledger.state import UtxoEntry
from node.types.transaction import OutPoint


def outpoint(n: int) -> OutPoint:
    return OutPoint(n.to_bytes(32, "big"), 0)


def entry(n: int) -> UtxoEntry:
    return UtxoEntry(bytes(20), n + 1, 1)


def test_created_outputs_are_held_until_spent():
    recent = RecentUtxos()
    recent.apply(spent=[], created=[(outpoint(1), entry(1)), (outpoint(2), entry(2))])
    assert recent.get(outpoint(1)) == entry(1)
    recent.apply(spent=[(outpoint(1), entry(1))], created=[])
    assert recent.get(outpoint(1)) is None and recent.get(outpoint(2)) == entry(2)


def test_the_oldest_are_forgotten_past_the_bound():
    recent = RecentUtxos(max_entries=3)
    recent.apply(spent=[], created=[(outpoint(n), entry(n)) for n in range(5)])
    assert len(recent) == 3
    assert recent.get(outpoint(0)) is None and recent.get(outpoint(1)) is None
    assert [recent.get(outpoint(n)) for n in (2, 3, 4)] == [entry(2), entry(3), entry(4)]
