"""Transaction admission: clients' and peers' transactions into the mempool, journaled and gossiped.

A client's transaction is acknowledged only once it is in the mempool
journal (one fsync per call: a submission, or a slice of a batch), then
gossiped to every peer; after a crash the journal's transactions are
admitted again.  A peer's transactions are
admitted without journaling or relaying (a transaction a node missed still
reaches it inside a block).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from node.encoding import DecodeError
from node.errors import CodedError, detached
from node.ledger.errors import LedgerError
from node.ledger.store import Store
from node.mempool import AlreadyCommitted, Mempool, MempoolEntry, MempoolError, MempoolJournal
from node.types.transaction import Transaction

log = logging.getLogger("ledger.node")

JOURNAL_FILE = "mempool.journal"


class Admission:
    """The ways into the mempool."""

    def __init__(self, store: Store, mempool: Mempool, journal: MempoolJournal,
                 broadcast: Callable[[list[bytes]], None], added: Callable[[], None] = lambda: None):
        """``broadcast`` sends client transactions to every peer; ``added`` is told when transactions entered
        the mempool (a node waiting for work starts its height)."""
        self.store = store
        self.mempool = mempool
        self.journal = journal
        self._broadcast = broadcast
        self._added = added

    def recover_journal(self) -> None:
        """Re-admit acknowledged transactions that had not committed before a crash."""
        readmitted = 0
        for raw in self.journal.recovered:
            try:
                _, new = self.mempool.add(Transaction.decode(raw))
                readmitted += int(new)
            except (DecodeError, LedgerError, MempoolError):
                continue  # committed meanwhile, or conflicted: nothing acknowledged is pending any more
        if self.journal.recovered:
            log.info("mempool journal recovered=%d readmitted=%d", len(self.journal.recovered), readmitted)
        self.journal.recovered = []
        self.journal.compact(self.mempool)

    def receive_peer_txs(self, raw_txs: list[bytes]) -> dict:
        admitted = rejected = known = 0
        for raw in raw_txs:
            try:
                tx = Transaction.decode(raw)
                _, new = self.mempool.add(tx)
                if new:
                    admitted += 1
                else:
                    known += 1
            except (DecodeError, LedgerError, MempoolError):
                rejected += 1
        if admitted:
            self._added()
        return {"admitted": admitted, "rejected": rejected, "known": known}

    def admit_client_txs(self, txs: list[Transaction]) -> list[CodedError | bool]:
        """Admit a client's transactions: journal them (one fsync), then gossip them.

        Each result is True (new), False (already pending) or the exception
        that refused it.  Nothing is acknowledged before it is on disk: one
        already pending but not journaled here (a peer's, or one whose append
        failed) is journaled and gossiped with the new ones.
        """
        results: list[CodedError | bool] = []
        added = False
        unjournaled: dict[bytes, MempoolEntry] = {}
        for tx in txs:
            try:
                entry, new = self.mempool.add(tx)
                added |= new
                if not entry.journaled:
                    unjournaled[tx.txid] = entry
                results.append(new)
            except (LedgerError, MempoolError) as exc:
                # A committed transaction is always refused here (its inputs are spent, or the pool is full), so
                # the committed index is read only for a refusal, not for every transaction admitted.
                refusal: CodedError = exc
                if self.store.get_tx_location(tx.txid) is not None:
                    refusal = AlreadyCommitted("txn-already-committed",
                                               f"transaction {tx.txid.hex()} is already committed",
                                               txid=tx.txid.hex())
                results.append(detached(refusal))  # kept as a value: without the frames that raised it
        raw_txs = [entry.tx.encoded for entry in unjournaled.values()]
        self.journal.append(raw_txs)
        for entry in unjournaled.values():
            entry.journaled = True
        self._broadcast(raw_txs)
        if added:
            self._added()
        return results
