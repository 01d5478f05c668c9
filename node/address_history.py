"""What each transaction of an address's history did to it: amounts in and out, the fee, the other parties.

The store's history index (``Store.history_of``) lists where an address
appears (height, index, txid, kind), newest first, by one seek.  This module
adds, per entry, what a person wants to read: the block time, how much the
transaction paid the address (``received``), how much of the address's money
it spent (``sent``), the net, the transaction's fee and the other addresses.

Spent outputs are no longer in the UTXO set, so their amounts come from the
transactions that created them (``store.get_transaction``); a genesis
allocation's from the canonical genesis document the store keeps (a fixed
offset: no parsing of the allocations); a block's fee output, when still
unspent, from the UTXO set, else from the fees of the block that created it.
The work per entry is bounded (``MAX_LOOKUPS`` transaction reads, one
bounded search of the owner's history for a spent fee output): the page
costs the same for an address with ten transactions or a million.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from node.crypto import address_hash
from node.encoding import DecodeError, Reader
from node.errors import CodedError
from node.ledger.state import fee_outpoint, genesis_txid
from node.ledger.store_layout import FEE_INDEX
from node.types.transaction import OutPoint, Transaction

MAX_LOOKUPS = 20_000
"""Transaction, block and history reads one entry may cost before it gives up (``history-unresolved``)."""
PAGE_LOOKUPS = 4_000
"""Reads one page of history may cost in all (a request's work is bounded; a page that needs more answers
``history-unresolved``: ask a smaller one)."""
FEE_SEARCH = 100_000
"""History entries of a fee output's owner searched (newest first) for the block that created it."""
HISTORY_UNRESOLVED = "history-unresolved"
HISTORY_PRUNED = "pruned"


class HistoryError(CodedError):
    """An entry's amounts cannot be read: the transaction that created a spent output is pruned (``pruned``), or
    reading them would cost more than ``MAX_LOOKUPS`` (``history-unresolved``)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One transaction (or genesis allocation, or block fee output) of an address, with what it did to it."""

    txid: bytes
    """32-byte txid; for genesis and fee entries the reserved id of the output that was created."""
    height: int
    """Block height (0: genesis)."""
    index: int
    """Position in the block; the allocation number at height 0; ``FEE_INDEX`` for a fee output."""
    time_ms: int
    """The block's time (the genesis time at height 0), ms since the Unix epoch."""
    received: int
    """Base units this transaction paid to the address."""
    sent: int
    """Base units of the address's outputs this transaction spent."""
    net: int
    """``received - sent``: negative when money left the address."""
    fee: int
    """The transaction's fee (inputs - outputs); 0 for genesis allocations and fee outputs."""
    counterparties: tuple[bytes, ...]
    """The other addresses, in order of first appearance: the recipients other than the address for money sent,
    the owners of the spent outputs other than the address for money received."""
    kind: str
    """As the store's history index says: ``tx``, ``genesis`` or ``fee``."""


class _Reads:
    """The reads of one entry (or one page: ``read_address_history`` shares them), memoised, counted against a
    budget (``MAX_LOOKUPS`` for one entry, ``PAGE_LOOKUPS`` for a page)."""

    def __init__(self, store, address: bytes, budget: int | None = None):
        self.store = store
        self.address = address
        self.left = MAX_LOOKUPS if budget is None else budget
        self.txs: dict[bytes, Transaction] = {}
        self.fees: dict[int, int] = {}
        self._doc: bytes | None = None

    def spend(self, what: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise HistoryError(HISTORY_UNRESOLVED, f"reading {what} would take more than {MAX_LOOKUPS} reads")

    def transaction(self, txid: bytes) -> Transaction | None:
        if txid not in self.txs:
            self.spend(f"transaction {txid.hex()}")
            tx = self.store.get_transaction(txid)
            if tx is None:
                return None
            self.txs[txid] = tx
        return self.txs[txid]

    def genesis_doc(self) -> bytes:
        return cached_genesis_doc(self.store)

    def output_amount(self, outpoint: OutPoint, owner: bytes, spent_at: tuple[int, int]) -> int:
        """The amount of ``outpoint`` (owned by ``owner``), spent by the transaction at ``spent_at``."""
        tx = self.transaction(outpoint.txid)
        if tx is not None and outpoint.index < len(tx.outputs):
            return tx.outputs[outpoint.index].amount
        chain_id = self.store.chain_id or ""
        if outpoint.txid == genesis_txid(chain_id):
            amount = genesis_allocation_amount(self.genesis_doc(), outpoint.index)
            if amount is not None:
                return amount
        height = self.fee_height(outpoint, owner, spent_at)
        if height is not None:
            return self.block_fees(height)
        raise HistoryError(HISTORY_PRUNED, f"the transaction that created {outpoint.txid.hex()}:{outpoint.index} is "
                                           f"no longer stored here (pruned, or the node started from a snapshot); "
                                           f"ask a node that keeps the whole chain")

    def fee_height(self, outpoint: OutPoint, owner: bytes, spent_at: tuple[int, int]) -> int | None:
        """The height whose fee output ``outpoint`` is, found among ``owner``'s fee entries before ``spent_at``."""
        if outpoint.index != 0:
            return None
        chain_id = self.store.chain_id or ""
        before: tuple[int, int] | None = spent_at
        seen = 0
        while before is not None and seen < FEE_SEARCH:
            self.spend("the history of a fee output's owner")
            page = self.store.history_of(owner, min(1000, FEE_SEARCH - seen), before)
            for item in page:
                if item.index == FEE_INDEX and item.txid == outpoint.txid \
                        and fee_outpoint(chain_id, item.height).txid == outpoint.txid:
                    return item.height
            seen += len(page)
            before = (page[-1].height, page[-1].index) if page and page[-1].height > 0 else None
        return None

    def block_fees(self, height: int) -> int:
        """The fees of the block at ``height``: what its fee output holds."""
        if height in self.fees:
            return self.fees[height]
        self.spend(f"block {height}")
        block = self.store.get_block(height)
        if block is None:
            raise HistoryError(HISTORY_PRUNED, f"block {height} is no longer stored here; ask a node that keeps "
                                               f"the whole chain")
        total = 0
        for index, tx in enumerate(block.txs):
            total += self.inputs_total(tx, (height, index)) - sum(o.amount for o in tx.outputs)
        self.fees[height] = total
        return total

    def inputs_total(self, tx: Transaction, at: tuple[int, int]) -> int:
        return sum(self.output_amount(i.prev, address_hash(i.public_key), at) for i in tx.inputs)


def genesis_allocation_amount(doc: bytes, index: int) -> int | None:
    """Allocation ``index``'s amount in a canonical genesis encoding (``genesis.document.encode_genesis``): read at
    its offset, the other allocations untouched; None when ``doc`` is not such an encoding or has no such index."""
    try:
        r = Reader(doc)
        r.text(64), r.u8(), r.text(256), r.u64()
        for _ in range(r.u32()):
            r.text(256), r.fixed(33), r.u64()
        count = r.u32()
        if not 0 <= index < count:
            return None
        offset = len(doc) - r.remaining() + index * 28 + 20
        if offset + 8 > len(doc):
            return None
        return int.from_bytes(doc[offset:offset + 8], "big")
    except DecodeError:
        return None


_GENESIS_DOC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""The canonical genesis document per store, read once (it never changes)."""


def cached_genesis_doc(store) -> bytes:
    """The store's canonical genesis document (28 bytes an allocation: 31 MB at 1.1M allocations, 25-45 ms to read),
    read the first time a spent genesis allocation's amount is asked for and kept while the store is open."""
    doc = _GENESIS_DOC.get(store)
    if doc is None:
        doc = _GENESIS_DOC[store] = store.genesis_doc or b""
    return doc


_GENESIS_TIME: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Genesis time per store (its genesis never changes)."""


def genesis_time_ms(store) -> int:
    """The genesis time named by the store's canonical genesis document (0 when it holds none)."""
    try:
        return _GENESIS_TIME[store]
    except (KeyError, TypeError):
        pass
    time_ms = 0
    try:
        r = Reader(store.genesis_doc or b"")
        r.text(64), r.u8(), r.text(256)
        time_ms = r.u64()
    except DecodeError:
        time_ms = 0
    try:
        _GENESIS_TIME[store] = time_ms
    except TypeError:
        pass
    return time_ms


def _unique(addresses, exclude: bytes) -> tuple[bytes, ...]:
    out: dict[bytes, None] = {}
    for a in addresses:
        if a != exclude:
            out.setdefault(bytes(a), None)
    return tuple(out)


def describe_entry(store, address: bytes, height: int, index: int, txid: bytes, kind: str,
                   reads: _Reads | None = None) -> HistoryEntry:
    """One history index entry of ``address`` with its amounts, fee, time and counterparties."""
    reads = reads if reads is not None else _Reads(store, address)
    if kind == "genesis":
        utxo = store.get_utxo(OutPoint(txid, index))
        amount = utxo.amount if utxo is not None else genesis_allocation_amount(reads.genesis_doc(), index)
        if amount is None:
            raise HistoryError(HISTORY_PRUNED, f"genesis allocation {index} is spent and the store keeps no "
                                               f"canonical genesis document to read its amount from")
        return HistoryEntry(txid, 0, index, genesis_time_ms(store), amount, 0, amount, 0, (), kind)
    header = store.get_header(height)
    time_ms = header.time_ms if header is not None else 0
    if kind == "fee":
        utxo = store.get_utxo(fee_outpoint(store.chain_id or "", height))
        amount = utxo.amount if utxo is not None else reads.block_fees(height)
        return HistoryEntry(txid, height, index, time_ms, amount, 0, amount, 0, (), kind)
    tx = reads.transaction(txid)
    if tx is None:
        raise HistoryError(HISTORY_PRUNED, f"transaction {txid.hex()} is no longer stored here")
    owners = [address_hash(i.public_key) for i in tx.inputs]
    amounts = [reads.output_amount(i.prev, owner, (height, index)) for i, owner in zip(tx.inputs, owners, strict=True)]
    received = sum(o.amount for o in tx.outputs if o.address == address)
    sent = sum(a for a, owner in zip(amounts, owners, strict=True) if owner == address)
    fee = sum(amounts) - sum(o.amount for o in tx.outputs)
    if sent > 0:
        counterparties = _unique((o.address for o in tx.outputs), address)
    else:
        counterparties = _unique(owners, address)
    return HistoryEntry(txid, height, index, time_ms, received, sent, received - sent, fee, counterparties, kind)


def read_address_history(store, address: bytes, limit: int,
                         before: tuple[int, int] | None) -> list[HistoryEntry]:
    """Up to ``limit`` entries of ``address``'s history, newest first, strictly before (height, index)
    ``before``, each with what it did to the address (``HistoryError`` when one cannot be read)."""
    address = bytes(address)
    reads = _Reads(store, address, PAGE_LOOKUPS)  # one budget for the page: a request's work is bounded
    return [describe_entry(store, address, e.height, e.index, e.txid, e.kind, reads)
            for e in store.history_of(address, limit, before)]
