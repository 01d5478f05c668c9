"""Bad input at scale: hypothesis throws generated requests at every route the
node's own OpenAPI schema lists, and raw or mangled bytes at every peer route.

Whatever arrives: no 500 (503 only as the documented "not yet" answer), every
error is JSON ``{"error": {"code", "message"}}``, the process keeps serving,
and the blocks committed before are still the chain with the same app hashes
(the chain may grow by itself meanwhile).

CI runs a fixed, derandomized sample; ``--runslow`` runs a much larger random
one.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.consensus.round_status import RoundStatus, VotesHeld
from node.crypto import encode_address, sha256
from node.encoding import Writer
from node.p2p.wire import decode_status_answer, encode_consensus_batch, encode_consensus_message, encode_tx_batch
from tests.test_bad_input import (  # noqa: F401  (``node`` is the module-scoped fixture)
    assert_chain_intact,
    forged_consensus_messages,
    forged_transactions,
    good_transfer,
    node,
    tip,
)

PEER_POSTS = ("/p2p/txs", "/p2p/consensus", "/p2p/round-state")
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
    assert len(ops) >= 20 and {p for p, _, _ in ops} >= {"/v1/txs", "/p2p/consensus", "/p2p/blocks"}
    return ops


def check_response(response: httpx.Response, what: str) -> None:
    status = response.status_code
    assert status < 500 or status == 503, (what, status, response.text[:300])
    if status >= 400:
        body = response.json()
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], (what, body)
        assert isinstance(body["error"]["message"], str), (what, body)
        if status == 503:
            assert body["error"]["code"] in ("height-not-reached", "catching-up", "mempool-full"), (what, body)


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
        if path in PEER_POSTS:
            kwargs["content"] = data.draw(peer_body(net, samples, path), label="body")
        elif data.draw(st.booleans(), label="json body"):
            kwargs["json"] = data.draw(json_strategy(samples), label="body")
        else:
            kwargs["content"] = data.draw(st.binary(max_size=300), label="raw body")
            kwargs["headers"] = {"content-type": data.draw(st.sampled_from(
                ["application/json", "text/plain", "application/octet-stream", "multipart/form-data"]))}
    if method == "POST" and path == "/v1/txs":
        params.setdefault("wait", "mempool")  # a generated transaction is never valid; do not sit in commit waits
    return method, url_path, kwargs


_valid_cache: dict[str, list[bytes]] = {}


def peer_body(net, samples, path: str) -> st.SearchStrategy[bytes]:
    """Raw bytes, framed batches of random items, and valid-looking messages with bytes changed."""
    if path not in _valid_cache:
        if path == "/p2p/txs":
            _valid_cache[path] = [tx.encoded for tx, _ in forged_transactions(net).values()]
        elif path == "/p2p/round-state":
            height = tip(net)["consensus"]["height"]
            held = VotesHeld(0, (sha256(b"a"),), ((None, 0b1011), (sha256(b"b"), 0b1)), ((sha256(b"b"), 0b110),))
            _valid_cache[path] = [RoundStatus(h, r, 2, (held,) if r == 0 else ()).encode()
                                  for h in (height, height + 1, 1) for r in (0, 3)]
        else:
            height = tip(net)["consensus"]["height"]
            _valid_cache[path] = [encode_consensus_message(m) for m in forged_consensus_messages(net, height).values()]
    bases = _valid_cache[path]

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
    if path == "/p2p/txs":
        framed = st.lists(items, max_size=6).map(encode_tx_batch)
    elif path == "/p2p/round-state":
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
    response = net.client.request(method, net.url(0) + path, **kwargs)
    check_response(response, f"{method} {path} {str(kwargs)[:200]}")


def _peer_routes(net, data) -> None:
    path = data.draw(st.sampled_from(PEER_POSTS), label="route")
    body = data.draw(peer_body(net, net.fuzz_samples, path), label="body")
    response = net.client.post(net.url(0) + path, content=body)
    check_response(response, f"POST {path} {body[:80].hex()}")
    if response.status_code == 200 and path == "/p2p/round-state":  # the node's own status and what it holds
        _, messages = decode_status_answer(response.content)
        assert not any(isinstance(m, Exception) for m, _ in messages), body.hex()
    elif response.status_code == 200:  # a well-framed batch: nothing in it may count
        result = response.json()
        assert result.get("accepted", 0) == 0 and result.get("admitted", 0) == 0, (path, body.hex(), result)


@pytest.fixture(scope="module")
def fuzz_node(node):  # noqa: F811  (the ``node`` fixture imported above, requested by name)
    node.fuzz_ops = operations(node)
    node.fuzz_samples = _samples(node)
    node.client.timeout = httpx.Timeout(10)
    yield node
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
def test_raw_and_mangled_bytes_on_peer_routes(fuzz_node, data):
    _peer_routes(fuzz_node, data)


@pytest.mark.slow
@SOAK
@given(data=st.data())
def test_generated_requests_soak(fuzz_node, data):
    _client_routes(fuzz_node, data)


@pytest.mark.slow
@SOAK
@given(data=st.data())
def test_peer_bytes_soak(fuzz_node, data):
    _peer_routes(fuzz_node, data)


def test_schema_lists_every_route(fuzz_node):
    """The generator draws from the served schema, so it must list every route (a new one is fuzzed automatically)."""
    ops = fuzz_node.fuzz_ops
    routes = {(m, p) for p, m, _ in ops}
    expected = {("GET", "/v1/health"), ("GET", "/v1/status"), ("GET", "/v1/validators"), ("GET", "/v1/genesis"),
                ("GET", "/v1/evidence"), ("GET", "/v1/mempool"), ("GET", "/metrics"), ("GET", "/v1/blocks/latest"),
                ("GET", "/v1/blocks/{height}"), ("GET", "/v1/blocks"), ("GET", "/v1/txs/{txid}"), ("POST", "/v1/txs"),
                ("POST", "/v1/txs/batch"), ("GET", "/v1/addresses/{address}/balance"),
                ("GET", "/v1/addresses/{address}/utxos"), ("GET", "/v1/addresses/{address}/txs"),
                ("POST", "/p2p/txs"), ("POST", "/p2p/consensus"), ("POST", "/p2p/round-state"),
                ("GET", "/p2p/status"), ("GET", "/p2p/blocks")}
    assert expected <= routes, expected - routes
