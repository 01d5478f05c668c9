"""Targeted bad input on every client and peer route: garbage, oversize bodies,
wrong types, unknown fields, forged signatures, wrong chain id.  Each gets a
4xx with a stable error code (or, for a well-framed peer batch, a per-item
rejection), never a 500, and the chain is not touched."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import types

import httpx
import pytest

from node.api.app import create_app
from node.config import NodeConfig
from node.consensus.messages import Proposal, Vote, VoteType, sign_proposal, sign_vote
from node.crypto import address_hash, derive_public_key, encode_address, sha256
from node.encoding import Writer
from node.p2p.wire import encode_consensus_batch, encode_consensus_message, encode_tx_batch
from node.types.transaction import COIN, OutPoint, Transaction, TxInput, TxOutput, sign_transaction
from tests.netutil import running_network


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
    """A peer whose request is cut off (timeout, cut link) used to be logged as a 500 'internal error'."""
    app = create_app(types.SimpleNamespace(config=NodeConfig()))
    for path in ("/p2p/consensus", "/p2p/txs", "/v1/txs"):
        sent = _asgi_call(app, "POST", path,
                          [{"type": "http.request", "body": b"\x00\x00", "more_body": True},
                           {"type": "http.disconnect"}],
                          [(b"content-type", b"application/octet-stream"), (b"content-length", b"100")])
        assert sent and sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] < 500, (path, sent[0])


# --------------------------------------------------------------------------- a live node


MAX_REQUEST_BYTES = 256 * 1024
NODE_OVERRIDES = {"max_request_bytes": MAX_REQUEST_BYTES, "min_height_wait_ms": 100, "log_level": "INFO",
                  "commit_wait_ms": 2_000}
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
               "/v1/addresses/{a}/balance", "/v1/addresses/{a}/utxos", "/v1/addresses/{a}/txs", "/metrics",
               "/p2p/status", "/p2p/blocks?from=1&to=2"]


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
    for path in ("/v1/txs", "/v1/txs/batch", "/p2p/txs", "/p2p/consensus"):
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
    cases = [
        ("/v1/blocks/abc", 400), ("/v1/blocks/1.5", 400), ("/v1/blocks/0", 404), ("/v1/blocks/-1", 404),
        (f"/v1/blocks/{big}", 404), ("/v1/blocks?from=-1", 400), ("/v1/blocks?from=x", 400),
        ("/v1/blocks?txs=maybe", 400), ("/v1/blocks?from=1&to=500", (200, 400)),
        (f"/v1/blocks?to={big}&from=1", (200, 400)),
        ("/v1/status?min_height=-1", 400), ("/v1/status?min_height=x", 400), (f"/v1/status?min_height={big}", 400),
        ("/v1/status?min_height=99999999", 503), ("/v1/mempool?limit=0", 400), (f"/v1/mempool?limit={big}", 400),
        ("/v1/txs/zz", 400), ("/v1/txs/" + "00" * 31, 400), ("/v1/txs/" + "00" * 32, 404),
        ("/v1/addresses/garbage/balance", 400), ("/v1/addresses/%00%ff/utxos", 400),
        (f"/v1/addresses/{alice[:-1]}x/balance", 400), (f"/v1/addresses/{alice.upper()}/txs", (200, 400)),
        (f"/v1/addresses/{alice}/balance?height=-1", 400), (f"/v1/addresses/{alice}/balance?height={big}", (400, 404)),
        (f"/v1/addresses/{alice}/balance?height=x", 400), (f"/v1/addresses/{alice}/utxos?after=zz", 400),
        (f"/v1/addresses/{alice}/utxos?after={'00' * 32}:{big}", 400), (f"/v1/addresses/{alice}/utxos?limit=0", 400),
        (f"/v1/addresses/{alice}/txs?before=1:x", 400), (f"/v1/addresses/{alice}/txs?before={big}:0", 400),
        ("/p2p/blocks", 400), ("/p2p/blocks?from=0&to=1", 400), ("/p2p/blocks?from=a&to=b", 400),
        ("/nope", 404), ("/v1/blocks/1/extra", 404),
    ]
    for path, status in cases:
        r = c.get(url + path)
        if 400 <= r.status_code:
            assert_error(r, status)
        else:
            assert r.status_code in ((status,) if isinstance(status, int) else status), (path, r.status_code)
    for method, path in (("DELETE", "/v1/txs"), ("PUT", "/p2p/txs"), ("POST", "/p2p/blocks"),
                         ("PATCH", "/v1/status"), ("POST", "/v1/health")):
        assert_error(c.request(method, url + path), 405, "method-not-allowed")
    assert_chain_intact(node, node.before)


def test_forged_and_wrong_chain_transactions_are_refused_everywhere(node):
    url = node.url(0)
    c = node.client
    for name, (tx, code) in forged_transactions(node).items():
        body = assert_error(c.post(url + "/v1/txs", json={"tx": tx.encoded.hex()}), 422, code)
        assert body["error"]["txid"] == tx.txid.hex(), name
        assert_error(c.post(url + "/v1/txs", params={"wait": "commit"}, json={"tx": tx.encoded.hex()}), 422, code)
        result = c.post(url + "/v1/txs/batch", json={"txs": [tx.encoded.hex()]}).json()["results"][0]
        assert (result["status"], result["code"]) == ("rejected", code), name
        peer = c.post(url + "/p2p/txs", content=encode_tx_batch([tx.encoded]))
        assert peer.status_code == 200 and peer.json() == {"admitted": 0, "rejected": 1, "known": 0}, name
        assert_error(c.get(url + f"/v1/txs/{tx.txid.hex()}"), 404, "tx-not-found")
    # A submission that names another chain.
    tx = good_transfer(node)
    assert_error(c.post(url + "/v1/txs", json={"tx": tx.encoded.hex(), "chain_id": "another-chain"}), 422,
                 "bad-txns-wrong-chain")
    assert_error(c.post(url + "/v1/txs/batch", json={"txs": [tx.encoded.hex()], "chain_id": "x"}), 422,
                 "bad-txns-wrong-chain")
    assert c.get(url + "/v1/mempool").json()["size"] == 0
    assert_chain_intact(node, node.before)


# --------------------------------------------------------------------------- peer routes


def test_garbage_on_peer_routes(node):
    url = node.url(0)
    c = node.client
    for path in ("/p2p/txs", "/p2p/consensus"):
        for body in (b"", b"garbage", b"\xff" * 4, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00",
                     struct.pack(">I", 10_001), b"\x00\x00\x00\x01\xff\xff\xff\xff"):
            assert_error(c.post(url + path, content=body), 400, "bad-encoding")
    # Well framed, bad inside: each item is refused on its own.
    assert c.post(url + "/p2p/txs", content=encode_tx_batch([b"", b"\x00" * 10])).json() == \
        {"admitted": 0, "rejected": 2, "known": 0}
    junk = Writer().u32(3).u8(1).var_bytes(b"x").u8(2).var_bytes(b"\x00" * 40).u8(9).var_bytes(b"").getvalue()
    assert c.post(url + "/p2p/consensus", content=junk).json() == \
        {"accepted": 0, "dropped": 3, "duplicate": 0, "buffered": 0, "stale": 0}
    for body in (b"", b"garbage", b"\x02" + b"\x00" * 20, b"\x01" + b"\x00" * 13 + b"\x00\x00\x00\x05"):
        assert_error(c.post(url + "/p2p/round-state", content=body), 400, "bad-encoding")
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
    url = node.url(0)
    c = node.client
    height = tip(node)["consensus"]["height"]
    for name, message in forged_consensus_messages(node, height).items():
        body = encode_consensus_batch([encode_consensus_message(message)])
        r = c.post(url + "/p2p/consensus", content=body)
        assert r.status_code == 200, (name, r.text)
        counts = r.json()
        # Never kept, never buffered; "stale" instead of "dropped" if the node moved on meanwhile.
        assert (counts["accepted"], counts["duplicate"], counts["buffered"]) == (0, 0, 0), (name, counts)
        assert counts["dropped"] + counts["stale"] == 1, (name, counts)
    # Forged votes in the validator's name next to its real ones: no evidence against it.
    assert c.get(url + "/v1/evidence").json()["evidence"] == []
    node.wait_height(tip(node)["height"] + 1)  # consensus carries on
    assert_chain_intact(node, node.before)


def test_peer_block_route_bounds(node):
    url = node.url(0)
    c = node.client
    h = tip(node)["height"]
    for params in ({"from": h + 5, "to": h + 10}, {"from": 5, "to": 1}, {"from": 2**63, "to": 2**63 + 1},
                   {"from": 1, "to": 2**70}):
        r = c.get(url + "/p2p/blocks", params=params)
        assert r.status_code == 200, (params, r.text[:200])
    from node.p2p.wire import decode_block_batch
    assert len(decode_block_batch(c.get(url + "/p2p/blocks", params={"from": 1, "to": 2**70}).content)) <= 100
    assert_chain_intact(node, node.before)
