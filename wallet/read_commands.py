"""The commands that read: ``address``, ``balance``, ``utxos``, ``history`` and ``tx`` (which verifies a
committed transaction against the pinned validators)."""

from __future__ import annotations

from node.crypto import encode_address
from wallet.amounts import amount_json, describe_amount, format_coins, plural
from wallet.client import NodeError
from wallet.context import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    fetch_and_verify,
    fetch_coins,
    parse_address_arg,
    parse_txid_arg,
    verified_json,
)
from wallet.trust import remember_height
from wallet.verify import VerificationError


def cmd_address(ctx: Context) -> int:
    store = ctx.keystore()
    ctx.emit({"address": store.address, "public_key": store.data["public_key"], "wallet": str(store.path)},
             [store.address])
    return EXIT_OK


def cmd_balance(ctx: Context) -> int:
    store = None
    if ctx.args.address:
        address = encode_address(parse_address_arg(ctx.args.address))
        if ctx.wallet_path.exists():
            store = ctx.keystore()
    else:
        store = ctx.keystore()
        address = store.address
    answer = ctx.client.get(f"/v1/addresses/{address}/balance", min_height=ctx.min_height(store))
    amount = int(answer["balance"])
    ctx.emit({"address": address, "height": answer["height"], "balance": amount_json(amount), "node": ctx.client.url},
             [f"{address}: {describe_amount(amount)} at height {answer['height']}"])
    return EXIT_OK


def cmd_utxos(ctx: Context) -> int:
    store = ctx.keystore()
    coins, height = fetch_coins(ctx, store.address, ctx.min_height(store))
    total = sum(c.amount for c in coins)
    lines = [f"{c.outpoint.txid.hex()}:{c.outpoint.index}  {format_coins(c.amount):>22}  height {c.height}"
             for c in coins]
    lines.append(f"{plural(len(coins), 'unspent output')}, {describe_amount(total)} at height {height}")
    ctx.emit({"address": store.address, "height": height, "total": amount_json(total),
              "utxos": [{"txid": c.outpoint.txid.hex(), "index": c.outpoint.index, "height": c.height,
                         "amount": amount_json(c.amount)} for c in coins]}, lines)
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    store = ctx.keystore()
    answer = ctx.client.get(f"/v1/addresses/{store.address}/txs", limit=ctx.args.limit,
                            min_height=ctx.min_height(store))
    items = answer.get("txs", [])
    lines = [f"height {e['height']:>8}  #{e['index']:<10}  {e['kind']:<7}  {e['txid']}" for e in items]
    if not items:
        lines.append(f"no transactions for {store.address}")
    ctx.emit({"address": store.address, "height": answer.get("height"), "txs": items, "next": answer.get("next")},
             lines)
    return EXIT_OK


def cmd_tx(ctx: Context) -> int:
    txid = parse_txid_arg(ctx.args.txid)
    store = ctx.keystore()
    try:
        answer = ctx.client.get(f"/v1/txs/{txid.hex()}", min_height=ctx.min_height(store))
    except NodeError as exc:
        if exc.code == "tx-not-found":
            ctx.emit({"txid": txid.hex(), "status": "unknown", "node": ctx.client.url},
                     [f"{txid.hex()}: unknown to {ctx.client.url} (neither pending nor committed)"])
            return EXIT_FAILED
        raise
    status = answer.get("status")
    if status == "pending":
        ctx.emit({"txid": txid.hex(), "status": "pending", "node": ctx.client.url},
                 [f"{txid.hex()}: pending in the mempool of {ctx.client.url}"])
        return EXIT_OK
    if status != "committed":
        raise VerificationError("malformed-answer", f"unexpected status {status!r}")
    chain = ctx.trusted_chain(store)
    verified = fetch_and_verify(ctx, chain, txid, answer)
    remember_height(store.path, chain, verified.block.header.height)
    outputs = [{"address": encode_address(o.address), "amount": amount_json(o.amount)}
               for o in verified.tx.outputs]
    lines = [f"{txid.hex()}: committed in block {verified.block.header.height} at index {verified.index}",
             f"block {verified.block.block_hash.hex()}"]
    lines += [f"  output {i}: {describe_amount(o.amount)} to {encode_address(o.address)}"
              for i, o in enumerate(verified.tx.outputs)]
    lines.append(verified.summary())
    ctx.emit({"txid": txid.hex(), "status": "committed", "index": verified.index, "outputs": outputs,
              "node": ctx.client.url, **verified_json(verified)}, lines)
    return EXIT_OK
