"""The commands that read: ``address``, ``balance``, ``utxos``, ``history`` and ``tx`` (which verifies a
committed transaction against the pinned validators).

With several nodes known, ``balance`` and ``utxos`` are verified reads (``wallet.quorum``): believed only when
validators holding more than 1/3 of the voting power sign the same answer, and they say ``agreed by N of M``;
with one node (or ``--trust-one``) they say ``trusted one node``."""

from __future__ import annotations

from datetime import UTC, datetime

from node.crypto import encode_address
from node.types.transaction import OutPoint
from wallet.amounts import amount_json, describe_amount, format_coins, plural
from wallet.client import NodeError
from wallet.coins import Coin
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
    reader = ctx.verified_reader(store)
    if reader is not None:
        amount, agreement = reader.balance(address, ctx.min_height(store))
        height, url, trust = agreement.answer.height, agreement.answer.url, agreement.summary()
        verified: dict[str, dict | None] = {"verified_read": agreement.to_json()}
    else:
        answer = ctx.client.get(f"/v1/addresses/{address}/balance", min_height=ctx.min_height(store))
        amount, height, url = int(answer["balance"]), answer["height"], ctx.client.url
        trust, verified = f"trusted one node ({url})", {"verified_read": None}
    ctx.emit({"address": address, "height": height, "balance": amount_json(amount), "node": url, "trust": trust,
              **verified}, [f"{address}: {describe_amount(amount)} at height {height}", trust])
    return EXIT_OK


def cmd_utxos(ctx: Context) -> int:
    store = ctx.keystore()
    reader = ctx.verified_reader(store)
    if reader is not None:
        items, height, agreement = reader.utxos(store.address, ctx.min_height(store))
        coins = [Coin(OutPoint(bytes.fromhex(u["txid"]), int(u["index"])), int(u["amount"]), int(u.get("height", 0)))
                 for u in items]
        trust = agreement.summary()
        verified: dict[str, dict | None] = {"verified_read": agreement.to_json()}
    else:
        coins, height = fetch_coins(ctx, store.address, ctx.min_height(store))
        trust, verified = f"trusted one node ({ctx.client.url})", {"verified_read": None}
    total = sum(c.amount for c in coins)
    lines = [f"{c.outpoint.txid.hex()}:{c.outpoint.index}  {format_coins(c.amount):>22}  height {c.height}"
             for c in coins]
    lines.append(f"{plural(len(coins), 'unspent output')}, {describe_amount(total)} at height {height}")
    lines.append(trust)
    ctx.emit({"address": store.address, "height": height, "total": amount_json(total),
              "utxos": [{"txid": c.outpoint.txid.hex(), "index": c.outpoint.index, "height": c.height,
                         "amount": amount_json(c.amount)} for c in coins], "trust": trust, **verified}, lines)
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    store = ctx.keystore()
    answer = ctx.client.get(f"/v1/addresses/{store.address}/txs", limit=ctx.args.limit,
                            min_height=ctx.min_height(store))
    items = answer.get("txs", [])
    lines = [history_line(e) for e in items]
    if not items:
        lines.append(f"no transactions for {store.address}")
    txs = [{**e, "time": utc_time(e.get("time_ms")), "net_amount": amount_json(int(e.get("net", 0))),
            "fee_amount": amount_json(int(e.get("fee", 0)))} for e in items]
    ctx.emit({"address": store.address, "height": answer.get("height"), "txs": txs, "next": answer.get("next"),
              "node": ctx.client.url}, lines)
    return EXIT_OK


def utc_time(time_ms: object) -> str | None:
    """``2024-05-01 12:00:00.250 UTC`` from ms since the epoch (None when the node said nothing)."""
    if not isinstance(time_ms, int):
        return None
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{time_ms % 1000:03d} UTC"


def history_line(e: dict) -> str:
    """One transaction for people: when, where, the signed amount in coins, the fee and the other party."""
    net, fee = int(e.get("net", 0)), int(e.get("fee", 0))
    others = e.get("counterparties") or []
    if e.get("kind") == "genesis":
        what = "genesis allocation"
    elif e.get("kind") == "fee":
        what = "fees of the block it proposed"
    elif net < 0:
        what = "to " + (", ".join(others) if others else "itself")
    else:
        what = "from " + (", ".join(others) if others else "itself")
    signed = ("+" if net > 0 else "") + format_coins(net)
    return (f"{utc_time(e.get('time_ms')) or '?'}  height {e['height']:>8}  {signed:>20} coins  fee "
            f"{format_coins(fee)}  {what}  {e['txid']}")


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
