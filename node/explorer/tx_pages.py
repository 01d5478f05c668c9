"""What the explorer's transaction and address pages show.

A transaction page starts from ``GET /v1/txs/{txid}``'s answer (status,
block, Merkle proof, the transaction) and adds, for each input, the output
it spends: from the transaction that created it (committed or pending), or
for a genesis allocation from the address index (an address's one genesis
allocation is its balance at height 0) or else the stored genesis document.  An address page reads the address
index a page at a time: balance, unspent outputs, history with signed
amounts (``node.address_history``).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.address_history import HistoryError, cached_genesis_doc, genesis_allocation_amount, read_address_history
from node.crypto import address_hash, encode_address
from node.ledger.state import genesis_txid
from node.ledger.store import Store
from node.mempool import Mempool
from node.types.transaction import OutPoint

ADDRESS_PAGE = 50
"""Unspent outputs, and history entries, per page of an address."""


@dataclass(frozen=True, slots=True)
class SpentOutput:
    """The output a transaction input spends, as far as this node can tell."""

    address: str
    """The address it paid (always known: an input's public key hashes to it)."""
    amount: int | None
    """Its amount in base units; None when no index tells it (a block's fee output, a genesis address with
    several allocations)."""
    origin: str
    """Where it came from: ``tx`` (a committed transaction), ``pending`` (a transaction in the mempool),
    ``genesis`` (an allocation) or ``fee`` (a block's fee output or an output no index names)."""


def find_spent_output(store: Store, mempool: Mempool, chain_id: str, prev: OutPoint, public_key: bytes) -> SpentOutput:
    """The output ``prev`` (spent by an input signed with ``public_key``): still unspent, from the transaction
    that created it, or from the genesis allocations."""
    owner = encode_address(address_hash(public_key))
    unspent = store.get_utxo(prev)
    if unspent is not None:
        origin = "genesis" if unspent.height == 0 else "tx"
        return SpentOutput(encode_address(unspent.address), unspent.amount, origin)
    created = store.get_transaction(prev.txid)
    origin = "tx"
    if created is None:
        entry = mempool.get(prev.txid)
        created, origin = (entry.tx, "pending") if entry is not None else (None, "")
    if created is not None and prev.index < len(created.outputs):
        output = created.outputs[prev.index]
        return SpentOutput(encode_address(output.address), output.amount, origin)
    if prev.txid == genesis_txid(chain_id):
        return SpentOutput(owner, genesis_amount(store, address_hash(public_key), prev.index), "genesis")
    return SpentOutput(owner, None, "fee")


def genesis_amount(store: Store, address: bytes, index: int) -> int | None:
    """The amount of genesis allocation ``index`` to ``address``: its balance after height 0 when that is its
    only allocation (two index reads), else read from the genesis document (None without one)."""
    at_genesis = store.history_of(address, 2, (1, 0))
    if len(at_genesis) == 1 and at_genesis[0].height == 0 and at_genesis[0].index == index:
        return store.balance_at(address, 0)
    return genesis_allocation_amount(cached_genesis_doc(store), index)


def tx_page(answer: dict, store: Store, mempool: Mempool, chain_id: str) -> dict:
    """A transaction page from ``GET /v1/txs/{txid}``'s ``answer``: each input with the output it spends, the
    outputs, the fee (the mempool's for a pending one; inputs minus outputs once every input amount is
    known), size, block and proof."""
    tx = answer["tx"]
    inputs = []
    for item in tx["inputs"]:
        prev = OutPoint(bytes.fromhex(item["prev_txid"]), item["prev_index"])
        spent = find_spent_output(store, mempool, chain_id, prev, bytes.fromhex(item["public_key"]))
        inputs.append({"prev_txid": item["prev_txid"], "prev_index": item["prev_index"], "spent": spent})
    total_out = sum(o["amount"] for o in tx["outputs"])
    amounts = [i["spent"].amount for i in inputs]
    total_in = sum(a for a in amounts if a is not None) if None not in amounts else None
    fee = answer.get("fee")
    if fee is None and total_in is not None:
        fee = total_in - total_out
    return {**answer, "inputs": inputs, "outputs": tx["outputs"], "total_in": total_in, "total_out": total_out,
            "fee": fee, "size": tx["size"]}


def parse_outpoint_cursor(text: str | None) -> OutPoint | None:
    """``txid:index`` (the last unspent output of the previous page) or None; ValueError when malformed."""
    if not text:
        return None
    txid, _, index = text.partition(":")
    raw = bytes.fromhex(txid)
    if len(raw) != 32 or not (index.isascii() and index.isdigit()) or int(index) >= 2**32:
        raise ValueError("the utxo cursor must be txid:index")
    return OutPoint(raw, int(index))


def parse_history_cursor(text: str | None) -> tuple[int, int] | None:
    """``height:index`` (the last history entry of the previous page) or None; ValueError when malformed."""
    if not text:
        return None
    height, _, index = text.partition(":")
    if not (height.isascii() and index.isascii() and height.isdigit() and index.isdigit()) \
            or int(height) >= 2**63 or int(index) >= 2**32:
        raise ValueError("the history cursor must be height:index")
    return int(height), int(index)


def address_page(store: Store, address: bytes, utxos_after: OutPoint | None,
                 history_before: tuple[int, int] | None) -> dict:
    """An address: balance, a page of unspent outputs from ``utxos_after``, a page of history (newest first)
    before ``history_before``, with the cursors of the following pages (``history_error``: why the history
    cannot be shown, e.g. a pruned transaction)."""
    utxos = store.utxos_of(address, ADDRESS_PAGE, utxos_after)
    try:
        history, history_error = read_address_history(store, address, ADDRESS_PAGE, history_before), None
    except HistoryError as exc:
        history, history_error = [], exc
    return {
        "address": encode_address(address),
        "height": store.height,
        "balance": store.balance(address),
        "utxos": [{"txid": op.txid.hex(), "index": op.index, "amount": e.amount, "height": e.height}
                  for op, e in utxos],
        "utxos_next": f"{utxos[-1][0].txid.hex()}:{utxos[-1][0].index}" if len(utxos) == ADDRESS_PAGE else None,
        "history": history,
        "history_next": f"{history[-1].height}:{history[-1].index}" if len(history) == ADDRESS_PAGE else None,
        "history_error": history_error,
        "paged": utxos_after is not None or history_before is not None,
    }
