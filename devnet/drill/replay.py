"""An independent replay of the chain from genesis, trusting nothing the nodes computed.

The drill checks the nodes' answers against it: no output spent twice, no
input that never existed, no money from nowhere, the supply at every height,
and every address's balance at every height.
"""

from __future__ import annotations

from collections import Counter

from genesis.document import Genesis
from node.crypto import encode_address
from node.ledger.state import fee_outpoint, genesis_txid


def replay(genesis: Genesis, blocks: list[dict]) -> dict:
    """Rebuild the UTXO set from ``genesis`` and ``blocks`` (``GET /v1/blocks?txs=true`` JSON, from height 1).

    Returns the outputs spent twice, inputs that never existed, transactions
    committed twice and those paying out more than they take in; the supply
    after every height; each transaction's (height, index); the block hashes;
    and ``balance_at(address, height)`` for every address.
    """
    utxos: dict[tuple[str, int], tuple[str, int]] = {}
    gtxid = genesis_txid(genesis.chain_id).hex()
    for n, alloc in enumerate(genesis.allocations):
        utxos[(gtxid, n)] = (encode_address(alloc.address), alloc.amount)
    balances: Counter = Counter()
    for addr, amount in utxos.values():
        balances[addr] += amount
    history: dict[str, list[tuple[int, int]]] = {a: [(0, b)] for a, b in balances.items()}
    spent: set[tuple[str, int]] = set()
    double_spends, missing, dup_txids, inflation = [], [], [], []
    txs: dict[str, tuple[int, int]] = {}
    supply = [sum(balances.values())]
    hashes = []

    def change(addr: str, delta: int, height: int) -> None:
        balances[addr] += delta
        hist = history.setdefault(addr, [(0, 0)])
        if hist[-1][0] == height:
            hist[-1] = (height, balances[addr])
        else:
            hist.append((height, balances[addr]))

    for h, block in enumerate(blocks, start=1):
        if block["height"] != h:
            raise RuntimeError(f"chain fetch out of order at {h}")
        hashes.append(block["hash"])
        fees = 0
        for index, tx in enumerate(block.get("txs", [])):
            txid = tx["txid"]
            if txid in txs:
                dup_txids.append(txid)
            txs[txid] = (h, index)
            total_in = 0
            for i in tx["inputs"]:
                key = (i["prev_txid"], i["prev_index"])
                if key in spent:
                    double_spends.append({"outpoint": f"{key[0]}:{key[1]}", "height": h, "txid": txid})
                    continue
                if key not in utxos:
                    missing.append({"outpoint": f"{key[0]}:{key[1]}", "height": h, "txid": txid})
                    continue
                addr, amount = utxos.pop(key)
                spent.add(key)
                total_in += amount
                change(addr, -amount, h)
            total_out = 0
            for n, o in enumerate(tx["outputs"]):
                utxos[(txid, n)] = (o["address"], o["amount"])
                total_out += o["amount"]
                change(o["address"], o["amount"], h)
            if total_out > total_in:
                inflation.append({"txid": txid, "height": h, "in": total_in, "out": total_out})
            else:
                fees += total_in - total_out
        if fees:
            proposer = block["header"]["proposer"]
            utxos[(fee_outpoint(genesis.chain_id, h).txid.hex(), 0)] = (proposer, fees)
            change(proposer, fees, h)
        supply.append(sum(balances.values()))

    def balance_at(addr: str, height: int) -> int:
        value = 0
        for hh, bal in history.get(addr, []):
            if hh > height:
                break
            value = bal
        return value

    return {"double_spends": double_spends, "missing": missing, "dup_txids": dup_txids, "txs": txs,
            "inflation": inflation,
            "supply": supply, "hashes": hashes, "balance_at": balance_at, "history": history}
