"""``watch``: print each payment to or from the wallet as it commits, from the node's event stream.

It reads ``GET /v1/events?address=<the wallet's address>&kinds=tx`` (Server-Sent Events), fetches each
transaction named there and prints its height, txid and what the wallet received or sent.  A stream that drops
is opened again with ``Last-Event-ID`` (the node replays what was committed meanwhile), at most
``MAX_RECONNECTS`` times in a row.  It stops on Ctrl-C, after ``--count`` payments or after ``--for`` seconds.

``wait_for_txid`` serves ``send --wait``: the event stream of the wallet's address, from the height its coins
were read at, until the transaction commits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator

import httpx

from node.crypto import address_hash, decode_address, encode_address
from wallet.amounts import amount_json, describe_amount
from wallet.client import NodeClient, NodeUnreachable
from wallet.context import EXIT_OK, EXIT_UNREACHABLE, Context, note

MAX_RECONNECTS = 5
"""Streams opened again in a row without an event in between before ``watch`` gives up."""
RECONNECT_PAUSE_S = 1.0
STREAM_READ_S = 45.0
"""Longest silence on a stream (the node pings every 15 s by default) before it counts as dropped."""


def read_events(lines: Iterable[str]) -> Iterator[dict]:
    """Server-Sent Events from the lines of a stream: ``{"event", "id", "data"}`` (data parsed as JSON);
    comments (``: ping``) are left out, but a ``{"ping": True}`` is yielded so a caller can check its clock."""
    current: dict = {}
    for line in lines:
        if line.startswith(":"):
            yield {"ping": True}
        elif line:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                try:
                    current["data"] = json.loads(value)
                except ValueError:
                    current["data"] = None
            elif field in ("event", "id"):
                current[field] = value
        elif current:
            yield current
            current = {}


def payment_of(tx: dict, own: bytes) -> dict:
    """What a committed transaction (``GET /v1/txs/TXID`` ``tx``) meant for the wallet: received (outputs to
    it), sent (outputs to others, when it spent the wallet's coins) and the addresses paid."""
    outputs = tx.get("outputs", [])
    spent = any(address_hash(bytes.fromhex(i["public_key"])) == own for i in tx.get("inputs", []))
    mine = encode_address(own)
    received = sum(o["amount"] for o in outputs if o["address"] == mine)
    others = [o for o in outputs if o["address"] != mine]
    sent = sum(o["amount"] for o in others) if spent else 0
    return {"direction": "sent" if spent else "received", "received": received, "sent": sent,
            "to": sorted({o["address"] for o in others}) if spent else []}


def describe_payment(height: int, txid: str, payment: dict) -> str:
    if payment["direction"] == "sent":
        return f"height {height} txid {txid} sent {describe_amount(payment['sent'])} to {', '.join(payment['to'])}"
    return f"height {height} txid {txid} received {describe_amount(payment['received'])}"


def cmd_watch(ctx: Context) -> int:
    args = ctx.args
    store = ctx.keystore()
    own = decode_address(store.address)
    ctx.trusted_chain(store)  # pins the genesis; the stream's node is checked against it
    client = ctx.client
    deadline = time.monotonic() + args.duration if args.duration is not None else None
    last_id: str | None = None
    printed = 0
    failures = 0
    if not ctx.json:
        note(f"watching {store.address} on {client.url} (Ctrl-C stops)")
    try:
        while failures <= MAX_RECONNECTS:
            try:
                headers = {"Last-Event-ID": last_id} if last_id else None
                with client.stream("/v1/events", {"address": store.address, "kinds": "tx"}, headers,
                                   read_timeout_s=STREAM_READ_S) as answer:
                    for event in read_events(answer.iter_lines()):
                        if deadline is not None and time.monotonic() >= deadline:
                            return EXIT_OK
                        kind = event.get("event")
                        if kind == "reset" and not ctx.json:
                            note(f"missed events: {event.get('data')}; see `ledger-wallet history`")
                        if kind == "overflow" and not ctx.json:
                            note("the node cut this stream off (too far behind); reconnecting")
                        if kind != "tx" or not isinstance(event.get("data"), dict):
                            continue
                        failures = 0
                        data = event["data"]
                        txid, height = str(data["txid"]), int(data["height"])
                        found = client.get(f"/v1/txs/{txid}", min_height=height)
                        payment = payment_of(found.get("tx", {}), own)
                        last_id = event.get("id", last_id)
                        if ctx.json:
                            print(json.dumps({"height": height, "index": data.get("index"), "txid": txid,
                                              "direction": payment["direction"],
                                              "received": amount_json(payment["received"]),
                                              "sent": amount_json(payment["sent"]), "to": payment["to"]}),
                                  flush=True)
                        else:
                            print(describe_payment(height, txid, payment), flush=True)
                        printed += 1
                        if args.count is not None and printed >= args.count:
                            return EXIT_OK
            except (httpx.TransportError, NodeUnreachable) as exc:
                if not ctx.json:
                    note(f"stream dropped ({type(exc).__name__}); reconnecting")
            failures += 1
            if deadline is not None and time.monotonic() >= deadline:
                return EXIT_OK
            time.sleep(RECONNECT_PAUSE_S)
    except KeyboardInterrupt:
        return EXIT_OK
    if not ctx.json:
        note(f"error: the event stream of {client.url} dropped {MAX_RECONNECTS + 1} times in a row; giving up")
    return EXIT_UNREACHABLE


def wait_for_txid(client: NodeClient, address: str, txid: bytes, after_height: int, deadline: float) -> dict | None:
    """``{"height", "index"}`` of ``txid`` once an event of ``address`` says it committed (the stream starts
    after ``after_height``, so a commit before the stream opened is replayed), or None when ``deadline`` passes.

    ``NodeError`` when the node refuses the stream (one without ``/v1/events``: the caller polls instead)."""
    wanted = txid.hex()
    after = str(after_height)
    for _ in range(MAX_RECONNECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            with client.stream("/v1/events", {"address": address, "kinds": "tx", "after": after},
                               read_timeout_s=min(remaining, STREAM_READ_S)) as answer:
                for event in read_events(answer.iter_lines()):
                    data = event.get("data")
                    if event.get("event") == "tx" and isinstance(data, dict):
                        if data.get("txid") == wanted:
                            return {"height": int(data["height"]), "index": int(data["index"])}
                        after = event.get("id", after)
                    if time.monotonic() >= deadline:
                        return None
        except (httpx.TransportError, NodeUnreachable):  # dropped or silent: again, from the last id seen
            time.sleep(min(RECONNECT_PAUSE_S, max(0.0, deadline - time.monotonic())))
    return None
