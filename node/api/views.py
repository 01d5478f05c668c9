"""JSON views of ledger records (REST only: hashing and signing use the binary encoding)."""

from __future__ import annotations

from node.crypto import encode_address
from node.ledger.state import UtxoEntry
from node.types.block import Block, BlockSummary, Header, summarize_block
from node.types.commit import Commit
from node.types.reconfig import Approval, ReconfigInput
from node.types.transaction import COIN, OutPoint, Transaction


def amount_json(amount: int) -> dict:
    return {"base_units": amount, "coins": f"{amount // COIN}.{amount % COIN:08d}"}


def tx_json(tx: Transaction) -> dict:
    return {
        "txid": tx.txid.hex(),
        "inputs": [{"prev_txid": i.prev.txid.hex(), "prev_index": i.prev.index, "public_key": i.public_key.hex(),
                    "signature": i.signature.hex()} for i in tx.inputs],
        "outputs": [{"address": encode_address(o.address), "amount": o.amount} for o in tx.outputs],
        "size": tx.size,
        "hex": tx.encoded.hex(),
    }


def header_json(header: Header) -> dict:
    return {
        "chain_id": header.chain_id,
        "height": header.height,
        "time_ms": header.time_ms,
        "prev_hash": header.prev_hash.hex(),
        "tx_root": header.tx_root.hex(),
        "app_hash": header.app_hash.hex(),
        "proposer": encode_address(header.proposer),
        "last_commit_hash": header.last_commit_hash.hex(),
        "validators_hash": header.validators_hash.hex(),
        "next_validators_hash": header.next_validators_hash.hex(),
        "inputs_hash": header.inputs_hash.hex(),
        "reconfig_hash": header.reconfig_hash.hex(),
    }


def reconfig_input_json(item: ReconfigInput) -> dict:
    """An approval (with the request it carries) or a quit, as a block shows it."""
    if isinstance(item, Approval):
        r = item.request
        return {"kind": "approve", "approver": encode_address(item.approver_address),
                "request": {"id": r.id.hex(), "kind": r.kind_name, "address": encode_address(r.address),
                            "public_key": r.public_key.hex(), "power": r.power, "name": r.name,
                            "expires": r.expires},
                "hex": item.encoded.hex()}
    return {"kind": "quit", "address": encode_address(item.address), "expires": item.expires,
            "hex": item.encoded.hex()}


def commit_json(commit: Commit | None) -> dict | None:
    if commit is None:
        return None
    return {
        "height": commit.height,
        "round": commit.round,
        "block_hash": commit.block_hash.hex(),
        "signatures": [{"validator": encode_address(s.validator), "time_ms": s.time_ms, "signature": s.signature.hex()}
                       for s in commit.signatures],
        "hex": commit.encode().hex(),
    }


def block_json(block: Block, commit: Commit | None, with_txs: bool = True) -> dict:
    out = block_summary_json(summarize_block(block), commit)
    if with_txs:
        out["txs"] = [tx_json(tx) for tx in block.txs]
    return out


def block_summary_json(block: BlockSummary, commit: Commit | None) -> dict:
    """A block as ``GET /v1/blocks`` lists it without ``txs``: ``block_json`` less the ``txs`` key."""
    return {
        "hash": block.hash.hex(),
        "height": block.height,
        "header": header_json(block.header),
        "header_hex": block.header.encode().hex(),
        "tx_count": len(block.txids),
        "txids": [txid.hex() for txid in block.txids],
        "inputs": [reconfig_input_json(item) for item in block.inputs],
        "last_commit": commit_json(block.last_commit),
        "commit": commit_json(commit),
    }


def utxo_json(outpoint: OutPoint, entry: UtxoEntry) -> dict:
    return {"txid": outpoint.txid.hex(), "index": outpoint.index, "address": encode_address(entry.address),
            "amount": entry.amount, "height": entry.height}
