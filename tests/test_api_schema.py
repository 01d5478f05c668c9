"""The OpenAPI schema documents every route (summary, description, response model, errors), and the response
models change nothing in what the routes answer: same keys, same order, same types, same bytes."""

from __future__ import annotations

import asyncio
import json
import re
import types

import httpx
import pytest
from fastapi.routing import APIRoute

from node.api.app import create_app
from node.config import NodeConfig
from node.crypto import encode_address
from tests.netutil import running_network

HEX = re.compile(r"^[0-9a-f]*$")


def _schema() -> tuple[dict, dict]:
    """The served schema, and FastAPI's own summary of each operation (its endpoint's name, title-cased)."""
    app = create_app(types.SimpleNamespace(config=NodeConfig()))
    auto = {(route.path, method.lower()): route.name.replace("_", " ").title()
            for route in app.routes if isinstance(route, APIRoute) for method in route.methods}

    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            response = await client.get("/openapi.json")
            assert response.status_code == 200
            return response.json()

    return asyncio.run(get()), auto


def _component(schema: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/"), ref
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_operation_is_documented():
    schema, auto = _schema()
    ops = [(path, method, op) for path, methods in schema["paths"].items() for method, op in methods.items()]
    assert len(ops) >= 16
    for path, method, op in ops:
        what = f"{method.upper()} {path}"
        assert path.startswith(("/v1/", "/metrics")), what
        summary = op.get("summary", "")
        assert summary and summary != auto[(path, method)], what
        assert len(op.get("description", "")) > 20, what
        ok = [code for code in op["responses"] if code in ("200", "202")]
        assert ok, what
        for code in ok:
            content = op["responses"][code]["content"]
            (media, body), = content.items()
            model = _component(schema, body["schema"]["$ref"])
            assert model.get("description"), (what, code)  # the model's docstring
            # every property of the model, and of every model it refers to, is described
            seen, todo = set(), [body["schema"]["$ref"]]
            while todo:
                ref = todo.pop()
                if ref in seen:
                    continue
                seen.add(ref)
                component = _component(schema, ref)
                assert component.get("description"), ref
                for name, prop in component.get("properties", {}).items():
                    assert prop.get("description"), (what, ref, name)
                todo += _refs(component)
        errors = [code for code in op["responses"] if code.startswith("4")]
        assert errors, what
        for code in errors + ["default"]:
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorResponse", (what, code)
        assert "422" not in op["responses"] or "HTTPValidationError" not in json.dumps(op["responses"]["422"])
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert _component(schema, error["properties"]["error"]["$ref"])["required"] == ["code", "message"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # the node answers 400 bad-request
    by_route = {(p, m): op for p, m, op in ops}
    assert {"400", "409", "413", "422", "503", "504"} <= set(by_route[("/v1/txs", "post")]["responses"])
    assert "404" in by_route[("/v1/blocks/{height}", "get")]["responses"]
    assert "text/plain" in by_route[("/metrics", "get")]["responses"]["200"]["content"]


def test_evidence_records_pass_unchanged():
    """No test network equivocates: an evidence record as ``EvidenceLog.record`` writes it, served in-process."""
    record = {"kind": "duplicate-vote", "validator": "ab" * 20, "height": 7, "round": 1, "vote_type": "precommit",
              "vote_a": {"block_hash": None, "signature": "cd" * 64, "encoded": "ef" * 40},
              "vote_b": {"block_hash": "01" * 32, "signature": "23" * 64, "encoded": "45" * 40},
              "seen_at_ms": 1_700_000_000_123, "later_key": 1.5e-05}
    node = types.SimpleNamespace(config=NodeConfig(), evidence=types.SimpleNamespace(records=[record]))
    app = create_app(node)

    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            return await client.get("/v1/evidence")

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.content == json.dumps({"evidence": [record]}, ensure_ascii=False,
                                           separators=(",", ":")).encode()


# --------------------------------------------------------------------------- a live node


def _same_bytes(response: httpx.Response) -> dict:
    """The answer is exactly what ``JSONResponse`` writes for its parsed value (key order, number formats)."""
    body = response.json()
    assert response.content == json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None,
                                          separators=(",", ":")).encode(), response.text[:300]
    return body


def _keys(obj: dict, *keys: str) -> None:
    assert list(obj) == list(keys), (list(obj), keys)


def _types(obj: dict, **kinds) -> None:
    for key, kind in kinds.items():
        value = obj[key]
        if kind == "hex":
            assert isinstance(value, str) and HEX.match(value), (key, value)
        elif kind is int:
            assert type(value) is int, (key, value)  # not a bool, not a float
        else:
            assert isinstance(value, kind), (key, value)


def _check_tx(tx: dict) -> None:
    _keys(tx, "txid", "inputs", "outputs", "size", "hex")
    _types(tx, txid="hex", size=int, hex="hex")
    for i in tx["inputs"]:
        _keys(i, "prev_txid", "prev_index", "public_key", "signature")
        _types(i, prev_txid="hex", prev_index=int, public_key="hex", signature="hex")
    for o in tx["outputs"]:
        _keys(o, "address", "amount")
        _types(o, address=str, amount=int)


def _check_commit(commit: dict | None) -> None:
    if commit is None:
        return
    _keys(commit, "height", "round", "block_hash", "signatures", "hex")
    _types(commit, height=int, round=int, block_hash="hex", hex="hex")
    for s in commit["signatures"]:
        _keys(s, "validator", "time_ms", "signature")
        _types(s, validator=str, time_ms=int, signature="hex")


def _check_block(block: dict, with_txs: bool) -> None:
    keys = ["hash", "height", "header", "header_hex", "tx_count", "txids", "inputs", "last_commit", "commit"]
    _keys(block, *keys, *(["txs"] if with_txs else []))
    _types(block, hash="hex", height=int, header_hex="hex", tx_count=int)
    _keys(block["header"], "chain_id", "height", "time_ms", "prev_hash", "tx_root", "app_hash", "proposer",
          "last_commit_hash", "validators_hash", "next_validators_hash", "inputs_hash", "reconfig_hash")
    _types(block["header"], chain_id=str, height=int, time_ms=int, prev_hash="hex", tx_root="hex", app_hash="hex",
           proposer=str, last_commit_hash="hex", validators_hash="hex", next_validators_hash="hex", inputs_hash="hex",
           reconfig_hash="hex")
    assert block["inputs"] == []
    assert all(HEX.match(t) for t in block["txids"])
    _check_commit(block["last_commit"])
    _check_commit(block["commit"])
    for tx in block.get("txs", []):
        _check_tx(tx)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("schema"), validators=1) as net:
        net.wait_height(2)
        yield net


def test_answers_keep_their_keys_types_and_bytes(net):
    def get(path: str, **params) -> httpx.Response:
        return net.client.get(net.url(0) + path, params=params)

    def ok(path, **params) -> dict:
        response = get(path, **params)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"] == "application/json"
        return _same_bytes(response)

    health = ok("/v1/health")
    _keys(health, "ok", "height")
    assert health["ok"] is True and type(health["height"]) is int

    status = ok("/v1/status")
    _keys(status, "chain_id", "node_name", "validator_address", "is_validator", "height", "earliest_height",
          "latest_block_hash", "latest_block_time_ms", "app_hash", "genesis_hash", "catching_up", "consensus",
          "mempool", "node_id", "p2p",
          "peers", "clock", "cpu_stages_s", "gc", "loop")
    _keys(status["loop"], "stalls", "longest_ms")
    assert type(status["loop"]["stalls"]) is int
    _types(status, chain_id=str, node_name=str, validator_address=str, is_validator=bool, height=int,
           latest_block_hash="hex", latest_block_time_ms=int, app_hash="hex", genesis_hash="hex", catching_up=bool,
           node_id=str, peers=list)
    _keys(status["consensus"], "height", "round", "step")
    _keys(status["mempool"], "size", "bytes")
    _keys(status["p2p"], "listen", "peers_up", "alone")
    assert status["p2p"]["alone"] is None  # one validator holds a quorum alone: null, not ""
    _keys(status["clock"], "offset_ms", "skewed", "warn_ms", "validators_seen", "injected_offset_ms")
    assert status["clock"]["offset_ms"] is None and type(status["clock"]["warn_ms"]) is int
    assert all(type(v) is float for v in status["cpu_stages_s"].values()), status["cpu_stages_s"]
    _keys(status["gc"], "collections", "seconds", "longest_ms", "collected", "refreeze")
    _keys(status["gc"]["refreeze"], "rounds", "freed", "last_freed", "last_ms", "frozen", "next_s")
    assert all(type(v) is int for v in status["gc"]["collections"])

    validators = ok("/v1/validators")
    _keys(validators, "height", "validators_hash", "total_power", "validators")
    _types(validators, height=int, validators_hash="hex", total_power=int)
    for v in validators["validators"]:
        _keys(v, "name", "address", "public_key", "power", "proposer_priority", "since")
        _types(v, name=str, address=str, public_key="hex", power=int, proposer_priority=int)
    first = ok("/v1/validators", height=1)
    _keys(first["validators"][0], "name", "address", "public_key", "power")  # a past height: no priorities
    changes = ok("/v1/validators/changes")
    _keys(changes, "tip", "changes")
    _keys(changes["changes"][0], "height", "validators_hash")
    pending = ok("/v1/validators/pending")
    _keys(pending, "height", "quorum_power", "pending", "pool")

    served = get("/v1/genesis")  # streamed from the genesis file as it is (never parsed by the node): not re-encoded
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    genesis = served.json()
    _keys(genesis, "genesis_hash", "genesis")
    _types(genesis, genesis_hash="hex", genesis=dict)
    assert genesis["genesis"]["chain_id"] == net.chain_id

    assert ok("/v1/evidence") == {"evidence": []}

    wallets = sorted(net.wallets)
    tx = net.transfer(wallets[0], b"\x07" * 20, 5_000)
    committed = net.submit(tx, wait="commit")
    assert committed.status_code == 200, committed.text
    answer = _same_bytes(committed)
    _keys(answer, "txid", "status", "height", "index", "block_hash")
    _types(answer, txid="hex", status=str, height=int, index=int, block_hash="hex")
    height = answer["height"]

    mempool = ok("/v1/mempool")
    _keys(mempool, "size", "bytes", "txs")
    _types(mempool, size=int, bytes=int, txs=list)

    latest = ok("/v1/blocks/latest")
    _check_block(latest, with_txs=True)
    first = ok("/v1/blocks/1")
    _check_block(first, with_txs=True)
    assert first["height"] == 1 and first["last_commit"] is None  # null stays null
    with_tx = ok(f"/v1/blocks/{height}")
    _check_block(with_tx, with_txs=True)
    assert with_tx["txs"] and with_tx["txids"] == [t["txid"] for t in with_tx["txs"]]

    page = ok("/v1/blocks", **{"from": 1, "to": 2})
    _keys(page, "height", "from", "to", "blocks")
    assert (page["from"], page["to"]) == (1, 2) and [b["height"] for b in page["blocks"]] == [1, 2]
    for block in page["blocks"]:
        _check_block(block, with_txs=False)  # no "txs" key at all, not "txs": null
    for block in ok("/v1/blocks", **{"from": 1, "to": height, "txs": "true"})["blocks"]:
        _check_block(block, with_txs=True)

    found = ok(f"/v1/txs/{tx.txid.hex()}")
    _keys(found, "status", "txid", "height", "index", "block_hash", "tx_root", "wtxid", "proof", "tx")
    _types(found, status=str, txid="hex", height=int, index=int, block_hash="hex", tx_root="hex", wtxid="hex")
    _keys(found["proof"], "index", "total", "siblings")
    for s in found["proof"]["siblings"]:
        _keys(s, "side", "hash")
    _check_tx(found["tx"])

    pending = net.submit(net.transfer(wallets[-1], b"\x08" * 20, 6_000))
    assert pending.status_code == 202, pending.text
    assert list(_same_bytes(pending)) == ["txid", "status"] and pending.json()["status"] == "pending"
    maybe = ok(f"/v1/txs/{pending.json()['txid']}")
    if maybe["status"] == "pending":
        _keys(maybe, "status", "txid", "fee", "tx")
        assert type(maybe["fee"]) is int

    address = encode_address(b"\x07" * 20)
    balance = ok(f"/v1/addresses/{address}/balance")
    _keys(balance, "address", "height", "balance", "amount")
    _types(balance, address=str, height=int, balance=int)
    assert balance["balance"] == 5_000 and balance["amount"] == {"base_units": 5_000, "coins": "0.00005000"}
    past = ok(f"/v1/addresses/{address}/balance", height=1)
    assert (past["height"], past["balance"]) == (1, 0)

    utxos = ok(f"/v1/addresses/{address}/utxos")
    _keys(utxos, "address", "height", "utxos", "next")
    assert utxos["next"] is None and len(utxos["utxos"]) == 1
    _keys(utxos["utxos"][0], "txid", "index", "address", "amount", "height")
    _types(utxos["utxos"][0], txid="hex", index=int, address=str, amount=int, height=int)
    one = ok(f"/v1/addresses/{address}/utxos", limit=1)
    assert one["next"] == f"{tx.txid.hex()}:0"

    history = ok(f"/v1/addresses/{address}/txs")
    _keys(history, "address", "height", "txs", "next")
    assert history["next"] is None
    (item,) = history["txs"]
    _keys(item, "height", "index", "txid", "kind", "time_ms", "received", "sent", "net", "fee", "counterparties")
    _types(item, time_ms=int, fee=int)
    assert {k: item[k] for k in ("height", "index", "txid", "kind", "received", "sent", "net")} == \
        {"height": height, "index": answer["index"], "txid": tx.txid.hex(), "kind": "tx", "received": 5_000,
         "sent": 0, "net": 5_000}
    assert item["counterparties"] and all(isinstance(a, str) and a.startswith("lg1") for a in item["counterparties"])

    batch = net.client.post(net.url(0) + "/v1/txs/batch", json={"txs": [tx.encoded.hex(), "zz"]})
    assert batch.status_code == 200
    assert _same_bytes(batch) == {"accepted": 0, "rejected": 2, "results": [
        {"txid": tx.txid.hex(), "status": "committed"},
        {"status": "rejected", "code": "bad-hex", "message": "tx must be hex"}]}

    metrics = get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    # every height this validator decided split into its phases (node.height_timeline)
    for phase in ("wait", "proposal", "prevotes", "precommits", "apply"):
        assert f'ledger_height_phase_seconds_count{{phase="{phase}"}}' in metrics.text, phase
    # what holds its memory, read the way the bench reads it (devnet.bench.measure.memory_parts)
    from devnet.bench.measure import MEMORY_METRICS, memory_parts

    parts = memory_parts(metrics.text)
    assert set(parts) == set(MEMORY_METRICS.values()), parts
    assert parts["heap_in_use_mb"] > 0 and 0 < parts["python_in_use_mb"] <= parts["python_arenas_mb"], parts
    assert parts["python_arenas_mb"] + parts["heap_in_use_mb"] < parts["anon_mb"] * 1.5, parts
    leveldb = [line for line in metrics.text.splitlines() if line.startswith("ledger_store_memory_bytes ")]
    assert len(leveldb) == 1 and 0 < float(leveldb[0].split()[1]) < parts["heap_in_use_mb"] * 1e6, leveldb
    assert 'ledger_resident_bytes{kind="anon"}' in metrics.text

    missing = get("/v1/blocks/999999")
    assert missing.status_code == 404
    _keys(missing.json()["error"], "code", "message", "height")
