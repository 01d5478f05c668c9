"""Targeted bad input on every client route and on the p2p port: garbage,
oversize bodies, wrong types, unknown fields, forged signatures, wrong chain id.

A client route answers each with a 4xx and a stable error code, never a 500.
On the p2p port (a ``RawPeer`` with a key of its own: the node allows any peer
that proves a key) a message that does not decode is dropped and counted
(``ledger_p2p_malformed_messages_total``) while the connection stays; a
well-framed batch has each bad item refused on its own (``ledger_p2p_rejected_txs``,
the ``dropped`` consensus verdict); forged consensus messages are never counted
and frame no one; block requests are answered within bounds.  The chain is not
touched.  The old peer routes under /p2p are gone from the REST port (404)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import time
import types

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genesis.document import genesis_hash
from node.api.app import create_app
from node.config import NodeConfig
from node.consensus.messages import Proposal, Vote, VoteType, sign_proposal, sign_vote
from node.crypto import address_hash, derive_public_key, encode_address, sha256
from node.encoding import DecodeError, Writer
from node.p2p.channels import BLOCKSYNC, CONSENSUS, ROUND_STATE, TXS
from node.p2p.wire import (
    MAX_BATCH_BLOCKS,
    SYNC_BLOCKS,
    decode_block_batch,
    decode_sync_message,
    encode_consensus_batch,
    encode_consensus_message,
    encode_sync_request,
    encode_tx_batch,
)
from node.types.transaction import COIN, OutPoint, Transaction, TxInput, TxOutput, sign_transaction
from tests.netutil import running_network
from tests.p2p_client import RawPeer


def _asgi_call(app, method: str, path: str, messages: list[dict], headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """Drive the ASGI app in-process with a scripted ``receive``."""
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(5)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 1),
             "client": ("127.0.0.1", 2), "root_path": ""}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


def test_peer_hanging_up_mid_body_is_not_an_internal_error():
    """A client whose request is cut off (timeout, cut link) used to be logged as a 500 'internal error'."""
    app = create_app(types.SimpleNamespace(config=NodeConfig()))
    for path in ("/v1/txs",):
        sent = _asgi_call(app, "POST", path,
                          [{"type": "http.request", "body": b"\x00\x00", "more_body": True},
                           {"type": "http.disconnect"}],
                          [(b"content-type", b"application/octet-stream"), (b"content-length", b"100")])
        assert sent and sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] < 500, (path, sent[0])


# --------------------------------------------------------------------------- a live node


MAX_REQUEST_BYTES = 256 * 1024
NODE_OVERRIDES = {"max_request_bytes": MAX_REQUEST_BYTES, "min_height_wait_ms": 100, "log_level": "INFO",
                  "commit_wait_ms": 2_000, "allowed_peers": "*"}
"""``allowed_peers = "*"``: a ``RawPeer`` with a key that is not a validator's may connect."""
OUTSIDER_KEY = sha256(b"not a validator")
OUTSIDER = address_hash(derive_public_key(OUTSIDER_KEY))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One validator (it commits alone), small body limit, short waits."""
    with running_network(tmp_path_factory.mktemp("badinput"), validators=1, overrides=NODE_OVERRIDES) as net:
        net.wait_height(2)
        net.before = chain_snapshot(net)
        yield net
        # Whatever was thrown at it, it still serves, its process lives, and its history is the same.
        assert net.client.get(net.url(0) + "/v1/health").status_code == 200
        assert_chain_intact(net, net.before)
        log = (net.specs[0].home / "node.log").read_text()
        assert "internal error" not in log and " CRITICAL " not in log


def chain_snapshot(net) -> list[tuple[str, str]]:
    blocks = net.client.get(net.url(0) + "/v1/blocks", params={"from": 1, "to": 100}).json()["blocks"]
    return [(b["hash"], b["header"]["app_hash"]) for b in blocks]


def assert_chain_intact(net, before: list[tuple[str, str]]) -> None:
    """Rejected input changes nothing: the blocks (and app hashes) seen before are still the chain; it may grow."""
    now = chain_snapshot(net)
    assert now[:len(before)] == before
    assert net.client.get(net.url(0) + "/v1/health").status_code == 200


def assert_error(response: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def raw_request(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send raw bytes as an HTTP request; the status code (0 if the server closed without one) and the reply."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
    if not reply.startswith(b"HTTP/1."):
        return 0, reply
    return int(reply.split(b" ", 2)[1]), reply


def tip(net) -> dict:
    return net.client.get(net.url(0) + "/v1/status").json()


def good_transfer(net) -> Transaction:
    return net.transfer("faucet", net.address("alice"), COIN, node=0)


def with_signature(tx: Transaction, signature: bytes, index: int = 0) -> Transaction:
    inputs = list(tx.inputs)
    inputs[index] = TxInput(inputs[index].prev, inputs[index].public_key, signature)
    return Transaction(tuple(inputs), tx.outputs)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def forged_transactions(net) -> dict[str, tuple[Transaction, str]]:
    """Transactions a node must refuse, each with the code it must give."""
    from node.crypto import HALF_N, N
    tx = good_transfer(net)
    sig = tx.inputs[0].signature
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    high_s = r + (N - s).to_bytes(32, "big")
    assert N - s > HALF_N
    utxo = net.utxos(0, encode_address(net.address("faucet")))[0]
    prev = OutPoint(bytes.fromhex(utxo["txid"]), utxo["index"])
    return {
        "flipped signature bit": (with_signature(tx, flip(sig, 77)), "bad-txns-sig"),
        "high-S signature": (with_signature(tx, high_s), "bad-txns-sig"),
        "zero signature": (with_signature(tx, bytes(64)), "bad-txns-sig"),
        "signed for another chain": (sign_transaction("another-chain", [(prev, net.wallets["faucet"])],
                                                      list(tx.outputs)), "bad-txns-sig"),
        "signed by a stranger's key": (sign_transaction(net.chain_id, [(prev, OUTSIDER_KEY)], list(tx.outputs)),
                                       "bad-txns-pubkey-mismatch"),
        "spends nothing that exists": (sign_transaction(net.chain_id, [(OutPoint(bytes(32), 0), net.wallets["faucet"])],
                                                        [TxOutput(OUTSIDER, 1)]), "bad-txns-inputs-missingorspent"),
        "pays more than it has": (sign_transaction(net.chain_id, [(prev, net.wallets["faucet"])],
                                                   [TxOutput(OUTSIDER, utxo["amount"] + 1)]), "bad-txns-in-belowout"),
    }


# --------------------------------------------------------------------------- client routes

CLIENT_GETS = ["/v1/health", "/v1/status", "/v1/validators", "/v1/genesis", "/v1/evidence", "/v1/mempool",
               "/v1/blocks/latest", "/v1/blocks/1", "/v1/blocks", "/v1/txs/" + "00" * 32,
               "/v1/addresses/{a}/balance", "/v1/addresses/{a}/utxos", "/v1/addresses/{a}/txs", "/metrics"]


def test_garbage_and_wrong_types_on_submit_routes(node):
    url = node.url(0)
    c = node.client
    for path in ("/v1/txs", "/v1/txs/batch"):
        assert_error(c.post(url + path, content=b"\x00\xffgarbage", headers={"content-type": "application/json"}),
                     400, "bad-request")
        assert_error(c.post(url + path, content=b"garbage"), 400, "bad-request")
        assert_error(c.post(url + path, content=b""), 400, "bad-request")
        for body in (None, 5, "tx", [1, 2], {"tx": 5}, {"txs": "x"}, {"tx": None}, {"tx": ["00"]}, {"txs": [5]},
                     {"tx": "00", "txs": ["00"]}, {"chain_id": 7}):
            assert_error(c.post(url + path, json=body), 400, "bad-request")
    # Unknown fields are refused, not ignored.
    tx_hex = good_transfer(node).encoded.hex()
    body = assert_error(c.post(url + "/v1/txs", json={"tx": tx_hex, "fee": 1}), 400, "bad-request")
    assert body["error"]["problems"][0]["loc"] == ["body", "fee"]
    assert_error(c.post(url + "/v1/txs/batch", json={"txs": [tx_hex], "priority": "high"}), 400, "bad-request")
    # Not hex, odd length, not a canonical transaction, trailing bytes.
    assert_error(c.post(url + "/v1/txs", json={"tx": "zz"}), 400, "bad-hex")
    assert_error(c.post(url + "/v1/txs", json={"tx": "abc"}), 400, "bad-hex")
    assert_error(c.post(url + "/v1/txs", json={"tx": "00"}), 400, "bad-txns-malformed")
    assert_error(c.post(url + "/v1/txs", json={"tx": tx_hex + "00"}), 400, "bad-txns-malformed")
    assert_error(c.post(url + "/v1/txs", params={"wait": "forever"}, json={"tx": tx_hex}), 400, "bad-request")
    results = c.post(url + "/v1/txs/batch", json={"txs": ["zz", "00", tx_hex + "00"]}).json()["results"]
    assert [r["code"] for r in results] == ["bad-hex", "bad-txns-malformed", "bad-txns-malformed"]
    assert_chain_intact(node, node.before)


def test_oversize_bodies_on_every_post_route(node):
    url = node.url(0)
    big = b"0" * (MAX_REQUEST_BYTES + 1)
    for path in ("/v1/txs", "/v1/txs/batch"):
        assert_error(node.client.post(url + path, content=big, headers={"content-type": "application/json"}),
                     413, "too-large")

        def chunks():  # no content-length: the limit must hold for a streamed body too
            for _ in range(MAX_REQUEST_BYTES // 4096 + 2):
                yield b"0" * 4096

        response = node.client.post(url + path, content=chunks(), headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert_error(response, response.status_code)
    # A content-length that is not a number (httpx will not send one, so a raw socket does).
    status, body = raw_request(node.specs[0].port, b"POST /v1/txs HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/json\r\nContent-Length: x1\r\nConnection: close\r\n\r\n1")
    assert 400 <= status < 500, (status, body)
    # A transaction over the size limit inside a small enough body.
    huge_tx = "00" * (MAX_REQUEST_BYTES // 4)
    assert_error(node.client.post(url + "/v1/txs", json={"tx": huge_tx}), (400, 413))
    assert_chain_intact(node, node.before)


def test_wrong_types_in_paths_and_queries(node):
    url = node.url(0)
    c = node.client
    alice = encode_address(node.address("alice"))
    big = str(2**70)
    tampered = alice[:-1] + ("q" if alice[-1] != "q" else "p")  # the checksum fails: never the same character
    cases = [
        ("/v1/blocks/abc", 400), ("/v1/blocks/1.5", 400), ("/v1/blocks/0", 404), ("/v1/blocks/-1", 404),
        (f"/v1/blocks/{big}", 404), ("/v1/blocks?from=-1", 400), ("/v1/blocks?from=x", 400),
        ("/v1/blocks?txs=maybe", 400), ("/v1/blocks?from=1&to=500", (200, 400)),
        (f"/v1/blocks?to={big}&from=1", (200, 400)),
        ("/v1/status?min_height=-1", 400), ("/v1/status?min_height=x", 400), (f"/v1/status?min_height={big}", 400),
        ("/v1/status?min_height=99999999", 503), ("/v1/mempool?limit=0", 400), (f"/v1/mempool?limit={big}", 400),
        ("/v1/txs/zz", 400), ("/v1/txs/" + "00" * 31, 400), ("/v1/txs/" + "00" * 32, 404),
        ("/v1/addresses/garbage/balance", 400), ("/v1/addresses/%00%ff/utxos", 400),
        (f"/v1/addresses/{tampered}/balance", 400), (f"/v1/addresses/{alice.upper()}/txs", (200, 400)),
        (f"/v1/addresses/{alice}/balance?height=-1", 400), (f"/v1/addresses/{alice}/balance?height={big}", (400, 404)),
        (f"/v1/addresses/{alice}/balance?height=x", 400), (f"/v1/addresses/{alice}/utxos?after=zz", 400),
        (f"/v1/addresses/{alice}/utxos?after={'00' * 32}:{big}", 400), (f"/v1/addresses/{alice}/utxos?limit=0", 400),
        (f"/v1/addresses/{alice}/txs?before=1:x", 400), (f"/v1/addresses/{alice}/txs?before={big}:0", 400),
        ("/v1/balances", 400), ("/v1/balances?addresses=", 400), (f"/v1/balances?addresses={alice},garbage", 400),
        (f"/v1/balances?addresses={alice},,{alice}", 400), (f"/v1/balances?addresses={tampered}", 400),
        (f"/v1/balances?addresses={alice},%20{alice}", 400),
        (f"/v1/balances?addresses={alice}&height=-1", 400), (f"/v1/balances?addresses={alice}&height=x", 400),
        (f"/v1/balances?addresses={alice}&height={big}", (400, 404)),
        (f"/v1/balances?addresses={alice}&height=99999999", 404),
        ("/v1/balances?addresses=" + ",".join([alice] * 101), 400),
        ("/nope", 404), ("/v1/blocks/1/extra", 404),
    ]
    for path, status in cases:
        r = c.get(url + path)
        if 400 <= r.status_code:
            assert_error(r, status)
        else:
            assert r.status_code in ((status,) if isinstance(status, int) else status), (path, r.status_code)
    assert_error(c.get(url + "/v1/balances", params={"addresses": ",".join([alice] * 101)}), 400, "too-many-addresses")
    assert c.get(url + "/v1/balances", params={"addresses": ",".join([alice] * 100)}).status_code == 200
    assert_error(c.get(url + "/v1/balances", params={"addresses": f"{alice},garbage"}), 400,
                 c.get(url + "/v1/addresses/garbage/balance").json()["error"]["code"])  # the one-address route's
    assert_error(c.get(url + "/v1/balances", params={"addresses": alice, "height": 99999999}), 404, "height-not-found")
    for route in ("balance", "utxos"):
        assert_error(c.get(url + f"/v1/addresses/{alice}/{route}", params={"height": 99999999}), 404,
                     "height-not-found")
    for method, path in (("DELETE", "/v1/txs"), ("PATCH", "/v1/status"), ("POST", "/v1/health")):
        assert_error(c.request(method, url + path), 405, "method-not-allowed")
    assert_chain_intact(node, node.before)


def test_forged_and_wrong_chain_transactions_are_refused_everywhere(node):
    url = node.url(0)
    c = node.client
    forged = forged_transactions(node)
    for name, (tx, code) in forged.items():
        body = assert_error(c.post(url + "/v1/txs", json={"tx": tx.encoded.hex()}), 422, code)
        assert body["error"]["txid"] == tx.txid.hex(), name
        assert_error(c.post(url + "/v1/txs", params={"wait": "commit"}, json={"tx": tx.encoded.hex()}), 422, code)
        result = c.post(url + "/v1/txs/batch", json={"txs": [tx.encoded.hex()]}).json()["results"][0]
        assert (result["status"], result["code"]) == ("rejected", code), name
        assert_error(c.get(url + f"/v1/txs/{tx.txid.hex()}"), 404, "tx-not-found")
    # The same transactions from a peer, on the p2p port: each refused by the mempool, and counted.
    rejected = metric(node, "ledger_p2p_rejected_txs")

    async def from_a_peer():
        async with raw_peer(node) as peer:
            peer.send(TXS, encode_tx_batch([tx.encoded for tx, _ in forged.values()]))
            await still_up(peer)

    run(from_a_peer)
    assert metric_reaches(node, "ledger_p2p_rejected_txs", rejected + len(forged))
    for tx, _ in forged.values():
        assert_error(c.get(url + f"/v1/txs/{tx.txid.hex()}"), 404, "tx-not-found")
    # A submission that names another chain.
    tx = good_transfer(node)
    assert_error(c.post(url + "/v1/txs", json={"tx": tx.encoded.hex(), "chain_id": "another-chain"}), 422,
                 "bad-txns-wrong-chain")
    assert_error(c.post(url + "/v1/txs/batch", json={"txs": [tx.encoded.hex()], "chain_id": "x"}), 422,
                 "bad-txns-wrong-chain")
    assert c.get(url + "/v1/mempool").json()["size"] == 0
    assert_chain_intact(node, node.before)


# --------------------------------------------------------------------------- the p2p port

PEER_ROUTES_GONE = (("POST", "/p2p/txs"), ("POST", "/p2p/consensus"), ("POST", "/p2p/round-state"),
                    ("GET", "/p2p/status"), ("GET", "/p2p/blocks?from=1&to=2"))
VERDICTS = ("accepted", "duplicate", "buffered", "stale", "dropped")


_peer_numbers = itertools.count(1)


def raw_peer(net, name: str = "bad-input-peer") -> RawPeer:
    """A connection to node 0's p2p port as a new peer (a key of its own, not a validator's: let in by
    ``allowed_peers``), so each conversation starts on a fresh link and its counters are its own.  It never
    answers pings: keep one conversation well under the node's idle timeout (10 s)."""
    spec = net.specs[0]
    name = f"{name}-{next(_peer_numbers)}"
    return RawPeer(spec.host, spec.p2p_port, sha256(name.encode()), net.chain_id, genesis_hash(net.genesis),
                   name=name)


def run(scenario, timeout: float = 30) -> None:
    async def bounded():
        await asyncio.wait_for(scenario(), timeout)
    asyncio.run(bounded())


def metric(net, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in node 0's /metrics whose labels include ``labels`` (0 when none)."""
    text = net.client.get(net.url(0) + "/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def metric_reaches(net, name: str, expected: float, timeout_s: float = 10.0) -> bool:
    """Whether ``name`` reaches ``expected`` within ``timeout_s`` (peer transactions are admitted by the node's
    intake task, after the message that carried them was read); False if it stays below or goes past."""
    deadline = time.monotonic() + timeout_s
    while (value := metric(net, name)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value == expected


def verdicts(net) -> dict[str, float]:
    """Consensus messages from peers by what became of them."""
    return {v: metric(net, "ledger_consensus_messages_received_total", verdict=v) for v in VERDICTS}


def p2p_events(net, kind: str) -> dict[str, float]:
    """``ledger_p2p_events_total`` of one kind, by reason."""
    text = net.client.get(net.url(0) + "/metrics").text
    return {sample.labels["reason"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "ledger_p2p_events_total" and sample.labels.get("kind") == kind}


def malformed(net, peer: RawPeer) -> float:
    """Messages of ``peer``'s current connection that did not decode."""
    return metric(net, "ledger_p2p_malformed_messages_total", peer=peer.hello.name)


_request_ids = itertools.count(1)


async def block_request(peer: RawPeer, start: int, end: int, timeout: float = 5.0) -> list:
    """Ask for blocks ``start..end`` on the blocksync channel; the (block, commit) pairs of the answer, which
    must come under the same request id."""
    request_id = next(_request_ids)
    peer.send(BLOCKSYNC, encode_sync_request(request_id, start, end))
    await peer.drain()

    def is_the_answer(message: bytes) -> bool:
        try:
            kind, number, _, _ = decode_sync_message(message)
        except DecodeError:
            return False
        return kind == SYNC_BLOCKS and number == request_id

    answer = await peer.receive(BLOCKSYNC, timeout, accept=is_the_answer)
    return decode_block_batch(decode_sync_message(answer)[3])


async def still_up(peer: RawPeer) -> None:
    """The node still serves this connection and has handled everything sent on it before (it reads in order)."""
    await peer.drain()
    assert await block_request(peer, 2**62, 2**62) == []


def test_peer_routes_are_gone_from_the_rest_port(node):
    """Peers talk on the p2p port now; the old routes are plain unknown paths (JSON 404, never a 500)."""
    for method, path in PEER_ROUTES_GONE:
        kwargs = {"content": b"\x00\x00\x00\x00"} if method == "POST" else {}
        assert_error(node.client.request(method, node.url(0) + path, **kwargs), 404, "not-found")
    assert_chain_intact(node, node.before)


GARBAGE_BATCHES = (b"", b"garbage", b"\xff" * 4, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00",
                   struct.pack(">I", 10_001), b"\x00\x00\x00\x01\xff\xff\xff\xff")
GARBAGE = {
    TXS: GARBAGE_BATCHES,
    CONSENSUS: GARBAGE_BATCHES,
    ROUND_STATE: (b"", b"garbage", b"\x02" + b"\x00" * 20, b"\x01" + b"\x00" * 13 + b"\x00\x00\x00\x05"),
    BLOCKSYNC: (b"", b"garbage", b"\x00", b"\x09" + b"\x00" * 8, b"\x01", b"\x01" + b"\x00" * 9,
                b"\x02" + b"\x00" * 19, b"\x02" + b"\x00" * 21),
}
"""Whole messages that do not decode, per channel."""


def test_garbage_on_peer_channels(node):
    rejected, before, dropped = metric(node, "ledger_p2p_rejected_txs"), verdicts(node), p2p_events(node, "dropped")
    junk = Writer().u32(3).u8(1).var_bytes(b"x").u8(2).var_bytes(b"\x00" * 40).u8(9).var_bytes(b"").getvalue()

    async def scenario():
        async with raw_peer(node) as peer:
            await still_up(peer)
            for channel, bodies in GARBAGE.items():
                for body in bodies:
                    count = malformed(node, peer)
                    peer.send(channel, body)
                    await still_up(peer)  # dropped, not the connection
                    assert malformed(node, peer) == count + 1, (hex(channel), body)
            # Well framed, bad inside: each item is refused on its own; transactions that do not decode are
            # refused transactions, while a consensus batch with messages that do not decode also counts once
            # against the connection (an honest peer sends none), after its other messages are handed on.
            count = malformed(node, peer)
            peer.send(TXS, encode_tx_batch([b"", b"\x00" * 10]))
            await still_up(peer)
            assert malformed(node, peer) == count
            peer.send(CONSENSUS, junk)
            await still_up(peer)
            assert malformed(node, peer) == count + 1

    run(scenario)
    assert metric_reaches(node, "ledger_p2p_rejected_txs", rejected + 2)
    after = verdicts(node)
    assert {v: after[v] - before[v] for v in VERDICTS} == {"accepted": 0, "duplicate": 0, "buffered": 0, "stale": 0,
                                                           "dropped": 3}
    assert p2p_events(node, "dropped") == dropped
    assert node.client.get(node.url(0) + "/v1/mempool").json()["size"] == 0
    assert_chain_intact(node, node.before)


def forged_consensus_messages(net, height: int) -> dict[str, Proposal | Vote]:
    """Proposals and votes no honest node may count."""
    chain = net.chain_id
    vkey = net.validator_keys[net.specs[0].name]
    validator = address_hash(derive_public_key(vkey))
    block_hash = sha256(b"some block")
    now_ms = int(time.time() * 1000)
    good_vote = sign_vote(chain, vkey, validator, VoteType.PREVOTE, height, 0, block_hash, now_ms)
    good_proposal = sign_proposal(chain, vkey, validator, height, 5, -1, block_hash, b"not a block")
    return {
        "vote by a non-validator": sign_vote(chain, OUTSIDER_KEY, OUTSIDER, VoteType.PRECOMMIT, height, 0, block_hash,
                                             now_ms),
        "vote by a stranger in a validator's name": sign_vote(chain, OUTSIDER_KEY, validator, VoteType.PREVOTE,
                                                              height, 0, block_hash, now_ms),
        "vote with a flipped signature bit": Vote(good_vote.vote_type, good_vote.height, good_vote.round,
                                                 good_vote.block_hash, now_ms, validator,
                                                 flip(good_vote.signature, 300)),
        "vote with a flipped hash bit": Vote(good_vote.vote_type, good_vote.height, good_vote.round,
                                            flip(block_hash, 3), now_ms, validator, good_vote.signature),
        "vote with a changed time": Vote(good_vote.vote_type, good_vote.height, good_vote.round,
                                         good_vote.block_hash, now_ms + 1, validator, good_vote.signature),
        "vote signed for another chain": sign_vote("another-chain", vkey, validator, VoteType.PRECOMMIT, height, 0,
                                                   block_hash, now_ms),
        "proposal by a non-validator": sign_proposal(chain, OUTSIDER_KEY, OUTSIDER, height, 0, -1, block_hash, b"v"),
        "proposal with a flipped signature bit": Proposal(height, 5, -1, block_hash, b"not a block", validator,
                                                          flip(good_proposal.signature, 9)),
        "proposal signed for another chain": sign_proposal("another-chain", vkey, validator, height, 0, -1,
                                                           block_hash, b"v"),
    }


def test_forged_consensus_messages_are_dropped_and_frame_no_one(node):
    c = node.client
    height = tip(node)["consensus"]["height"]
    forged = forged_consensus_messages(node, height)

    async def scenario():
        async with raw_peer(node) as peer:
            for name, message in forged.items():
                before = verdicts(node)
                peer.send(CONSENSUS, encode_consensus_batch([encode_consensus_message(message)]))
                await still_up(peer)
                after = verdicts(node)
                delta = {v: after[v] - before[v] for v in VERDICTS}
                # Never kept, never buffered; "stale" instead of "dropped" if the node moved on meanwhile.
                assert (delta["accepted"], delta["duplicate"], delta["buffered"]) == (0, 0, 0), (name, delta)
                assert delta["dropped"] + delta["stale"] == 1, (name, delta)

    run(scenario)
    # Forged votes in the validator's name next to its real ones: no evidence against it.
    assert c.get(node.url(0) + "/v1/evidence").json()["evidence"] == []
    node.wait_height(tip(node)["height"] + 1)  # consensus carries on
    assert_chain_intact(node, node.before)


def test_peer_block_request_bounds(node):
    h = tip(node)["height"]
    dropped = p2p_events(node, "dropped")
    odd = [(h + 5, h + 10), (5, 1), (0, 0), (2**63, 2**63 + 1), (2**63 - 1, 2**63), (1, 2**63), (1, 2**64 - 1),
           (2**64 - 1, 2**64 - 1), (2**64 - 2, 2**64 - 1), (2**64 - 1, 1), (0, 2**64 - 1)]

    async def scenario():
        async with raw_peer(node) as peer:
            for start, end in odd:
                blocks = await block_request(peer, start, end)
                heights = [block.height for block, _ in blocks]
                assert len(blocks) <= MAX_BATCH_BLOCKS, (start, end, len(blocks))
                assert all(max(1, start) <= x <= end for x in heights), (start, end, heights)
                if max(1, start) <= min(h, end):  # what it holds, in order from the first asked for
                    assert heights == list(range(max(1, start), max(1, start) + len(heights))), (start, end, heights)
                    assert heights, (start, end)
                else:
                    assert heights == [], (start, end, heights)
            heights = [block.height for block, _ in await block_request(peer, 1, 2**64 - 1)]
            assert heights == list(range(1, len(heights) + 1)) and min(h, MAX_BATCH_BLOCKS) <= len(heights)

    run(scenario)
    assert p2p_events(node, "dropped") == dropped
    assert node.client.get(node.url(0) + "/v1/health").status_code == 200
    assert_chain_intact(node, node.before)
