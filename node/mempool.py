"""The mempool: transactions admitted but not yet committed.

Admission runs the stateless checks, the UTXO checks against committed state
plus pending transactions (a pending transaction's outputs may be spent by a
later one), and the signature checks, once per transaction per node (the
signature cache).  A second transaction spending an output already spent by a
pending one is refused: first seen wins.  Bounded by count and bytes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from node.errors import CodedError
from node.ledger.errors import TxError
from node.ledger.rules import SignatureCache, check_transaction_stateless, validate_transaction
from node.ledger.state import StateView, UtxoEntry
from node.types.transaction import OutPoint, Transaction


class MempoolError(CodedError):
    """A transaction the mempool will not take; ``code`` is stable."""


class MempoolFull(MempoolError):
    """The pool is at its bounds: the same transaction may be taken later."""


class MempoolConflict(MempoolError):
    """A pending transaction already spends one of its inputs (first seen wins)."""


class AlreadyCommitted(MempoolError):
    """The transaction is already in a block."""


@dataclass(eq=False, slots=True)
class MempoolEntry:
    """One pending transaction."""

    tx: Transaction
    fee: int
    """Inputs minus outputs, base units."""
    size: int
    """Encoded bytes."""
    height: int
    """Committed height when it was admitted (for expiry)."""
    seq: int
    """Arrival order: first seen wins and breaks fee-rate ties."""
    parents: set[bytes] | None = None
    """Pending txids whose outputs this one spends (None: none; most transactions spend committed outputs)."""
    children: set[bytes] | None = None
    """Txids admitted while this one was pending that spend its outputs (some may have left the pool since)."""
    journaled: bool = False
    """In this node's mempool journal: a client's transaction once appended, any pending one once compacted.  A
    peer's transaction is not, until a client submits it here too (its acknowledgement journals it first)."""

    @property
    def fee_rate(self) -> float:
        return self.fee / self.size


class _PendingView:
    """Committed state plus outputs created by pending transactions, minus pending spends.

    A pending transaction's outputs are read from the transaction itself when a child spends one (rare),
    rather than kept in a dict entry per output for every pending transaction.
    """

    __slots__ = ("pool",)

    def __init__(self, pool: Mempool):
        self.pool = pool

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        pool = self.pool
        if outpoint in pool.spent_by:
            return None
        created = find_pending_output(pool.entries, outpoint)
        if created is not None:
            return created
        return pool.state.get_utxo(outpoint)


def find_pending_output(entries: dict[bytes, MempoolEntry], outpoint: OutPoint) -> UtxoEntry | None:
    """The output at ``outpoint`` if a pending transaction in ``entries`` creates it (spent or not)."""
    parent = entries.get(outpoint.txid)
    if parent is None:
        return None
    outputs = parent.tx.outputs
    index = outpoint.index
    if not 0 <= index < len(outputs):
        return None
    out = outputs[index]
    return UtxoEntry(out.address, out.amount, 0)


class Mempool:
    """Pending transactions in arrival order, with their spends indexed for conflicts."""

    def __init__(self, state: StateView, chain_id: str, sig_cache: SignatureCache,
                 max_txs: int, max_bytes: int, expiry_blocks: int, height: int = 0):
        self.state = state
        self.chain_id = chain_id
        self.sig_cache = sig_cache
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.expiry_blocks = expiry_blocks
        self.height = height
        self.entries: dict[bytes, MempoolEntry] = {}
        self.by_encoded: dict[bytes, Transaction] = {}
        """Encoded bytes -> pending transaction, so a block's transactions need not be decoded again."""
        self.spent_by: dict[OutPoint, bytes] = {}
        self.total_bytes = 0
        self._seq = itertools.count()
        self._view = _PendingView(self)
        self.admitted = 0
        self.rejected = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self.entries.get(txid)

    def add(self, tx: Transaction) -> tuple[MempoolEntry, bool]:
        """Admit ``tx``; returns (entry, True) if new, (entry, False) if it was already pending.

        Raises ``TxError`` for an invalid transaction, ``MempoolConflict`` when
        a pending transaction already spends one of its inputs,
        ``MempoolFull`` when the pool is at its bounds.
        """
        txid = tx.txid
        existing = self.entries.get(txid)
        if existing is not None:
            return existing, False
        try:
            check_transaction_stateless(tx)
            for txin in tx.inputs:
                other = self.spent_by.get(txin.prev)
                if other is not None:
                    raise MempoolConflict(
                        "txn-mempool-conflict",
                        f"output {txin.prev.txid.hex()}:{txin.prev.index} is already spent by pending transaction "
                        f"{other.hex()}; first seen wins", conflicting_txid=other.hex())
            if len(self.entries) >= self.max_txs or self.total_bytes + tx.size > self.max_bytes:
                raise MempoolFull("mempool-full", f"mempool is full ({len(self.entries)} transactions, "
                                                  f"{self.total_bytes} bytes); retry later")
            fee = validate_transaction(tx, self._view, self.chain_id, self.sig_cache)
        except (TxError, MempoolError):
            self.rejected += 1
            raise
        entry = MempoolEntry(tx, fee, tx.size, self.height, next(self._seq))
        entries, spent_by = self.entries, self.spent_by
        for txin in tx.inputs:
            prev = txin.prev
            spent_by[prev] = txid
            parent = entries.get(prev.txid)  # validated: a pending txid here means it spends that one's output
            if parent is not None:
                if entry.parents is None:
                    entry.parents = set()
                entry.parents.add(prev.txid)
                if parent.children is None:
                    parent.children = set()
                parent.children.add(txid)
        entries[txid] = entry
        self.by_encoded[tx.encoded] = tx
        self.total_bytes += entry.size
        self.admitted += 1
        return entry, True

    def _remove(self, txid: bytes) -> MempoolEntry | None:
        """Take one entry out of every index; its children are left to the caller."""
        entry = self.entries.pop(txid, None)
        if entry is None:
            return None
        self.by_encoded.pop(entry.tx.encoded, None)
        self.total_bytes -= entry.size
        spent_by = self.spent_by
        for txin in entry.tx.inputs:
            if spent_by.get(txin.prev) == txid:
                del spent_by[txin.prev]
        return entry

    def _drop(self, txid: bytes) -> None:
        entry = self._remove(txid)
        if entry is None:
            return
        # a child spending a dropped parent's output can never be valid
        for child in self._children_of(entry):
            self._drop(child)

    def select(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Transactions for a new block: highest fee rate first, parents before children."""
        chosen: list[Transaction] = []
        included: set[bytes] = set()
        size = 0
        waiting = sorted(self.entries.values(), key=lambda e: (-e.fee / e.size, e.seq))  # fee_rate, inlined
        for _ in range(3):  # a child skipped before its parent gets another chance
            deferred = []
            for entry in waiting:
                if len(chosen) >= max_txs:
                    return chosen
                if entry.parents and not entry.parents <= included:
                    deferred.append(entry)
                    continue
                if size + entry.size > max_bytes:
                    continue
                chosen.append(entry.tx)
                included.add(entry.tx.txid)
                size += entry.size
            if not deferred:
                break
            waiting = deferred
        return chosen

    def update(self, height: int, committed: list[Transaction]) -> list[bytes]:
        """After block ``height`` commits: drop its transactions, their conflicts, and expired ones.

        Returns the txids dropped other than the committed ones.  Pending
        transactions stay valid unless a committed transaction spent one of
        their inputs (or a parent's): signatures never need re-checking.
        """
        self.height = height
        dropped: list[bytes] = []
        for tx in committed:
            txid = tx.txid
            entry = self._remove(txid)
            if entry is not None:
                for child_txid in self._children_of(entry):
                    parents = self.entries[child_txid].parents
                    if parents is not None:
                        parents.discard(txid)
        for tx in committed:
            for txin in tx.inputs:
                loser = self.spent_by.get(txin.prev)
                if loser is not None and loser != tx.txid:
                    dropped.append(loser)
                    self._drop(loser)
        if self.expiry_blocks > 0:
            # Entries sit in arrival order, so admission heights never decrease: stop at the first young one
            # (without copying the whole pool each block).
            expired = []
            for txid, entry in self.entries.items():
                if height - entry.height < self.expiry_blocks:
                    break
                expired.append(txid)
            for txid in expired:
                if txid in self.entries:  # not dropped meanwhile as the child of an expired one
                    dropped.append(txid)
                    self.expired += 1
                    self._drop(txid)
        return dropped

    def _children_of(self, entry: MempoolEntry) -> list[bytes]:
        """Pending txids spending one of ``entry``'s outputs (``entry`` itself may be out of the pool by now)."""
        if not entry.children:
            return []
        return [child for child in entry.children if child in self.entries]

    def recheck(self) -> list[bytes]:
        """Full re-validation against committed state (after block sync applied many blocks)."""
        entries = sorted(self.entries.values(), key=lambda e: e.seq)
        self.entries.clear()
        self.by_encoded.clear()
        self.spent_by.clear()
        self.total_bytes = 0
        dropped = []
        for entry in entries:
            try:
                new, _ = self.add(entry.tx)
                new.height = entry.height
                new.seq = entry.seq
            except (TxError, MempoolError):
                dropped.append(entry.tx.txid)
        return dropped


class MempoolJournal:
    """Client-acknowledged transactions on disk until they commit.

    A node answers ``202 pending`` only after the transaction is fsynced
    here, so a crash between acknowledgement and commit loses nothing: on
    restart the journal is re-admitted.  It is rewritten with just the
    pending transactions every ``compact_every`` blocks.
    """

    def __init__(self, path: str, compact_every: int = 20):
        from node.consensus.records import AppendLog, load_log

        self.path = path
        self.compact_every = compact_every
        self.recovered: list[bytes] = load_log(path)
        self._log = AppendLog(path)
        self._blocks = 0

    def append(self, raw_txs: list[bytes]) -> None:
        """Durably record ``raw_txs`` (one fsync for the lot)."""
        if not raw_txs:
            return
        for raw in raw_txs:
            self._log.append(raw)
        self._log.sync()

    def on_commit(self, pool: Mempool, force: bool = False) -> None:
        self._blocks += 1
        if force or self._blocks >= self.compact_every:
            self.compact(pool)

    def compact(self, pool: Mempool) -> None:
        from node.consensus.records import AppendLog, replace_log

        self._blocks = 0
        self._log.close()
        replace_log(self.path, [entry.tx.encoded for entry in pool.entries.values()])
        self._log = AppendLog(self.path)
        for entry in pool.entries.values():
            entry.journaled = True

    def close(self) -> None:
        self._log.close()
