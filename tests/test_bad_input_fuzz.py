"""Bad input at scale: hypothesis throws generated requests at every route the
node's own OpenAPI schema lists, raw or mangled whole messages at every peer
channel of the p2p port (over an authenticated ``RawPeer`` connection), and
raw bytes at the p2p handshake.

Whatever arrives on a route: no 500 (503 only as the documented "not yet"
answer) and every error is JSON ``{"error": {"code", "message"}}``.  Whatever
arrives on a channel: nothing is accepted (no consensus message kept, no
transaction admitted), and the connection stays up unless the node drops it
for a reason it counts (``ledger_p2p_events_total{kind="dropped"}``).  Garbage
at the handshake is refused and counted.  Throughout, the process keeps
serving, and the blocks committed before are still the chain with the same app
hashes (the chain may grow by itself meanwhile).

CI runs a fixed, derandomized sample; ``--runslow`` runs a much larger random
one.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from node.consensus.round_status import RoundStatus, VotesHeld
from node.crypto import encode_address, sha256
from node.encoding import Writer
from node.p2p.channels import BLOCKSYNC, CONSENSUS, ROUND_STATE, TXS
from node.p2p.secret import PREAMBLE, FrameError
from node.p2p.wire import (
    encode_block_batch,
    encode_consensus_batch,
    encode_consensus_message,
    encode_sync_blocks,
    encode_sync_height,
    encode_sync_request,
    encode_tx_batch,
)
from tests.test_bad_input import (  # noqa: F401  (``node`` is the module-scoped fixture)
    assert_chain_intact,
    forged_consensus_messages,
    forged_transactions,
    good_transfer,
    node,
    raw_peer,
    still_up,
    tip,
)

PEER_CHANNELS = (CONSENSUS, ROUND_STATE, TXS, BLOCKSYNC)
CONNECTION_MAX_AGE_S = 5.0
"""A fuzzing connection is replaced when older than this (the ``RawPeer`` never answers pings)."""
CI = settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SOAK = settings(max_examples=5000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _samples(net) -> dict:
    """Things that look almost right, so the generator reaches past the first check."""
    alice = encode_address(net.address("alice"))
    tx = good_transfer(net)
    return {
        "address": alice,
        "tx_hex": tx.encoded.hex(),
        "txid": tx.txid.hex(),
        "tokens": ["", "0", "1", "-1", "true", "false", "null", "NaN", "1e9", "0x10", "１", str(2**63), str(2**64),
                   str(-2**63 - 1), "00" * 32, "00" * 32 + ":0", "1:0", ":", alice, alice[:-1] + "q", alice.upper(),
                   "lg1", "%00", "../../etc/passwd", "mempool", "commit"],
    }


def value_strategy(samples: dict) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-2**70, 2**70).map(str),
        st.integers(0, 300).map(str),
        _text,
        st.sampled_from(samples["tokens"]),
        st.binary(max_size=40).map(bytes.hex),
    )


def json_strategy(samples: dict) -> st.SearchStrategy:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=False, allow_infinity=False), _text,
                       st.sampled_from([samples["tx_hex"], samples["tx_hex"][:-2], samples["tx_hex"] + "00"]))
    anything = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) |
                            st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
    shaped = st.fixed_dictionaries({}, optional={
        "tx": st.one_of(anything, st.binary(max_size=300).map(bytes.hex)),
        "txs": st.one_of(anything, st.lists(st.one_of(st.binary(max_size=200).map(bytes.hex), leaves), max_size=5)),
        "chain_id": st.one_of(anything, st.just("devnet")),
        "extra": anything,
    })
    return st.one_of(anything, shaped)


def operations(net) -> list[tuple[str, str, dict]]:
    schema = net.client.get(net.url(0) + "/openapi.json").json()
    ops = [(path, method.upper(), op) for path, methods in schema["paths"].items() for method, op in methods.items()]
    assert len(ops) >= 16 and {p for p, _, _ in ops} >= {"/v1/txs", "/v1/blocks"}
    return ops


def check_response(response: httpx.Response, what: str) -> None:
    status = response.status_code
    assert status < 500 or status == 503, (what, status, response.text[:300])
    if status >= 400:
        body = response.json()
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], (what, body)
        assert isinstance(body["error"]["message"], str), (what, body)
        if status == 503:
            assert body["error"]["code"] in ("height-not-reached", "catching-up", "mempool-full", "too-many-waiting",
                                              "too-many-event-clients"), (what, body)


def draw_request(data, net, ops, samples) -> tuple[str, str, dict]:
    path, method, op = data.draw(st.sampled_from(ops), label="operation")
    values = value_strategy(samples)
    url_path = path
    params: dict[str, str] = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            raw = data.draw(st.one_of(values, st.just(samples["address"]), st.just(samples["txid"])), label=p["name"])
            url_path = url_path.replace("{" + p["name"] + "}", quote(raw, safe="") or "%20")
        elif p["in"] == "query" and data.draw(st.booleans(), label=f"with {p['name']}"):
            params[p["name"]] = data.draw(values, label=p["name"])
    for name in data.draw(st.lists(st.sampled_from(["x", "from", "to", "limit", "height", "min_height", "wait"]),
                                   max_size=2, unique=True), label="extra params"):
        params.setdefault(name, data.draw(values, label=name))
    kwargs: dict = {"params": params}
    if method == "POST":
        if data.draw(st.booleans(), label="json body"):
            kwargs["json"] = data.draw(json_strategy(samples), label="body")
        else:
            kwargs["content"] = data.draw(st.binary(max_size=300), label="raw body")
            kwargs["headers"] = {"content-type": data.draw(st.sampled_from(
                ["application/json", "text/plain", "application/octet-stream", "multipart/form-data"]))}
    if method == "POST" and path == "/v1/txs":
        params.setdefault("wait", "mempool")  # a generated transaction is never valid; do not sit in commit waits
    return method, url_path, kwargs


_valid_cache: dict[int, list[bytes]] = {}


def _bases(net, channel: int) -> list[bytes]:
    """Valid-looking items (or whole messages, on round-state and blocksync) for ``channel``."""
    if channel not in _valid_cache:
        height = tip(net)["consensus"]["height"]
        if channel == TXS:
            _valid_cache[channel] = [tx.encoded for tx, _ in forged_transactions(net).values()]
        elif channel == ROUND_STATE:
            held = VotesHeld(0, (sha256(b"a"),), ((None, 0b1011), (sha256(b"b"), 0b1)), ((sha256(b"b"), 0b110),))
            _valid_cache[channel] = [RoundStatus(h, r, 2, (held,) if r == 0 else ()).encode()
                                     for h in (height, height + 1, 1) for r in (0, 3)]
        elif channel == BLOCKSYNC:
            _valid_cache[channel] = [encode_sync_height(h, 1) for h in (0, 1, height, height + 1_000)] + \
                [encode_sync_request(i, a, b) for i, a, b in ((1, 1, 2), (2, 2**63, 2**64 - 1), (2**32 - 1, 5, 1))] + \
                [encode_sync_blocks(i, encode_block_batch([])) for i in (1, 2**32 - 1)]
        else:
            _valid_cache[channel] = [encode_consensus_message(m)
                                     for m in forged_consensus_messages(net, height).values()]
    return _valid_cache[channel]


def peer_message(net, channel: int) -> st.SearchStrategy[bytes]:
    """Raw bytes, framed batches of random items, and valid-looking messages with bytes changed."""
    bases = _bases(net, channel)

    @st.composite
    def mangled(draw) -> bytes:
        base = bytearray(draw(st.sampled_from(bases)))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(base) - 1))
            op = draw(st.sampled_from(["flip", "cut", "insert"]))
            if op == "flip":
                base[at] ^= draw(st.integers(1, 255))
            elif op == "cut":
                del base[at:at + draw(st.integers(1, 8))]
            else:
                base[at:at] = draw(st.binary(min_size=1, max_size=8))
            if not base:
                base = bytearray(b"\x00")
        return bytes(base)

    items = st.one_of(mangled(), st.sampled_from(bases), st.binary(max_size=120))
    if channel == TXS:
        framed = st.lists(items, max_size=6).map(encode_tx_batch)
    elif channel in (ROUND_STATE, BLOCKSYNC):
        framed = st.sampled_from(bases)
    else:
        framed = st.lists(items, max_size=6).map(lambda xs: encode_consensus_batch(xs))
        raw_items = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=80)), max_size=5).map(
            lambda xs: Writer().u32(len(xs)).getvalue() + b"".join(Writer().u8(k).var_bytes(v).getvalue()
                                                                   for k, v in xs))
        framed = st.one_of(framed, raw_items)
    wrong_count = st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=60)).map(
        lambda t: t[0].to_bytes(4, "big") + t[1])
    return st.one_of(st.binary(max_size=600), framed, wrong_count, mangled())


def _client_routes(net, data) -> None:
    method, path, kwargs = draw_request(data, net, net.fuzz_ops, net.fuzz_samples)
    with net.client.stream(method, net.url(0) + path, **kwargs) as response:
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            return  # a live event stream (GET /v1/events) never ends by itself: it answered, and the client hangs up
        response.read()
    check_response(response, f"{method} {path} {str(kwargs)[:200]}")


def node_counts(net) -> dict:
    """What junk must never change (accepted consensus messages, admitted transactions: pending plus committed)
    and the connections the node dropped or refused, by reason, from one scrape of /metrics."""
    text = net.client.get(net.url(0) + "/metrics").text
    counts: dict = {"accepted": 0.0, "admitted": 0.0, "dropped": {}, "refused": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ledger_consensus_messages_received_total" and sample.labels["verdict"] == "accepted":
                counts["accepted"] += sample.value
            elif sample.name in ("ledger_mempool_size", "ledger_txs_committed_total"):
                counts["admitted"] += sample.value
            elif sample.name == "ledger_p2p_events_total" and sample.labels["kind"] in ("dropped", "refused"):
                counts[sample.labels["kind"]][sample.labels["reason"]] = sample.value
    return counts


class FuzzPeer:
    """One ``RawPeer`` connection kept across examples on one event loop; replaced when the node drops it
    or when it gets old."""

    def __init__(self, net):
        self.net = net
        self.runner = asyncio.Runner()
        self.peer = None
        self.opened = 0.0

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
            self.peer = None
        self.runner.close()

    async def _connected(self):
        if self.peer is not None and time.monotonic() - self.opened > CONNECTION_MAX_AGE_S:
            self.peer.close()
            self.peer = None
        if self.peer is None:
            self.peer = await raw_peer(self.net, "fuzz-peer").connect()
            self.opened = time.monotonic()
        return self.peer

    async def _send(self, channel: int, message: bytes) -> bool:
        """``message`` on ``channel``; whether the connection is still up (and the message handled)."""
        peer = await self._connected()
        peer.send(channel, message)
        try:
            await still_up(peer)
            return True
        except (FrameError, ConnectionError):
            peer.close()
            self.peer = None
            return False

    def send(self, channel: int, message: bytes) -> bool:
        return self.runner.run(asyncio.wait_for(self._send(channel, message), 20))


def _peer_channels(net, data) -> None:
    channel = data.draw(st.sampled_from(PEER_CHANNELS), label="channel")
    message = data.draw(peer_message(net, channel), label="message")
    before = node_counts(net)
    up = net.fuzz_peer.send(channel, message)
    assert net.client.get(net.url(0) + "/v1/health").status_code == 200
    after = node_counts(net)
    what = (hex(channel), message[:80].hex())
    assert after["accepted"] == before["accepted"], what
    assert after["admitted"] == before["admitted"], what
    if not up:  # dropped: only for a reason the node counts
        deadline = time.monotonic() + 5
        while after["dropped"] == before["dropped"] and time.monotonic() < deadline:
            time.sleep(0.02)
            after = node_counts(net)
        new = {reason for reason, n in after["dropped"].items() if n > before["dropped"].get(reason, 0)}
        assert new and "internal-error" not in new, (what, new)


def _handshake_bytes(net, data) -> None:
    garbage = data.draw(st.one_of(st.binary(max_size=200), st.binary(min_size=32, max_size=32).map(
        lambda key: PREAMBLE + key), st.binary(max_size=60).map(lambda tail: PREAMBLE[:6] + tail)), label="bytes")
    refused = sum(node_counts(net)["refused"].values())
    spec = net.specs[0]

    async def send_garbage():
        reader, writer = await asyncio.open_connection(spec.host, spec.p2p_port)
        try:
            writer.write(garbage)
            writer.write_eof()  # no more: the node need not wait out its handshake timeout
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)  # the node hangs up
        except ConnectionError:
            pass
        finally:
            writer.close()

    asyncio.run(send_garbage())
    deadline = time.monotonic() + 5
    while sum(node_counts(net)["refused"].values()) == refused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(node_counts(net)["refused"].values()) == refused + 1, garbage.hex()
    assert net.client.get(net.url(0) + "/v1/health").status_code == 200


@pytest.fixture(scope="module")
def fuzz_node(node):  # noqa: F811  (the ``node`` fixture imported above, requested by name)
    node.fuzz_ops = operations(node)
    node.fuzz_samples = _samples(node)
    node.client.timeout = httpx.Timeout(10)
    node.fuzz_peer = FuzzPeer(node)
    yield node
    node.fuzz_peer.close()
    assert_chain_intact(node, node.before)
    assert node.client.get(node.url(0) + "/v1/evidence").json()["evidence"] == []
    # Every route still answers properly afterwards.
    assert node.client.get(node.url(0) + "/v1/blocks/latest").status_code == 200


@CI
@given(data=st.data())
def test_generated_requests_on_every_route(fuzz_node, data):
    _client_routes(fuzz_node, data)


@CI
@given(data=st.data())
def test_raw_and_mangled_messages_on_peer_channels(fuzz_node, data):
    _peer_channels(fuzz_node, data)


@CI
@given(data=st.data())
def test_raw_bytes_at_the_p2p_handshake(fuzz_node, data):
    _handshake_bytes(fuzz_node, data)


@pytest.mark.slow
@SOAK
@given(data=st.data())
def test_generated_requests_soak(fuzz_node, data):
    _client_routes(fuzz_node, data)


@pytest.mark.slow
@SOAK
@given(data=st.data())
def test_peer_messages_soak(fuzz_node, data):
    _peer_channels(fuzz_node, data)


@pytest.mark.slow
@SOAK
@given(data=st.data())
def test_handshake_bytes_soak(fuzz_node, data):
    _handshake_bytes(fuzz_node, data)


def test_schema_lists_every_route(fuzz_node):
    """The generator draws from the served schema, so it must list every route (a new one is fuzzed automatically)."""
    ops = fuzz_node.fuzz_ops
    routes = {(m, p) for p, m, _ in ops}
    expected = {("GET", "/v1/health"), ("GET", "/v1/status"), ("GET", "/v1/validators"), ("GET", "/v1/genesis"),
                ("GET", "/v1/evidence"), ("GET", "/v1/mempool"), ("GET", "/metrics"), ("GET", "/v1/blocks/latest"),
                ("GET", "/v1/blocks/{height}"), ("GET", "/v1/blocks"), ("GET", "/v1/txs/{txid}"), ("POST", "/v1/txs"),
                ("POST", "/v1/txs/batch"), ("GET", "/v1/addresses/{address}/balance"),
                ("GET", "/v1/addresses/{address}/utxos"), ("GET", "/v1/addresses/{address}/txs")}
    assert expected <= routes, expected - routes
    assert not any(p.startswith("/p2p") for _, p in routes), routes  # peers talk on the p2p port only
