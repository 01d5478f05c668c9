"""Fault drills: the per-link proxy, the fault plan, the checker's replay, and
the CI drill (a real 4-validator network under kills, a partition and pauses
for 60 seconds, then every check of ``devnet.drill``)."""

from __future__ import annotations

import asyncio
import itertools
import time
import types
from pathlib import Path

import pytest

from devnet.byzantine import Targets, tamper_block, tamper_block_batch, tamper_decided
from devnet.drill import (
    FAULT_KINDS,
    Checker,
    DrillOptions,
    format_table,
    plan_faults,
    ring_cut_pairs,
    run_drill_sync,
    validator_names,
)
from devnet.drill.fault_checks import block_time_findings
from devnet.drill.liveness import HeightMonitor
from devnet.drill.plan import format_offset
from devnet.proxy import LinkProxy
from genesis.build import make_genesis
from node.consensus.round_status import Decided
from node.crypto import address_hash, derive_public_key, encode_address, verify_signature
from node.ledger.errors import BlockError
from node.ledger.rules import check_block_body
from node.ledger.state import fee_outpoint, genesis_txid
from node.p2p.wire import decode_block_batch, decode_consensus_batch, encode_block_batch, encode_consensus_message
from node.types.block import Block, Header, compute_tx_root
from node.types.commit import Commit
from node.types.hashes import ZERO_HASH
from node.types.reconfig import EMPTY_INPUTS_HASH
from node.types.transaction import OutPoint, TxOutput, sign_transaction, signing_digest

# --------------------------------------------------------------------------- proxy


async def _echo_server():
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, payload: bytes, timeout: float) -> bytes | None:
    """Send ``payload`` through ``port`` and read it back; None if nothing came back in time or it was reset."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (TimeoutError, OSError):
        return None
    try:
        writer.write(payload)
        await writer.drain()
        got = b""
        while len(got) < len(payload):
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return None
            got += chunk
        return got
    except (TimeoutError, OSError, ConnectionError):
        return None
    finally:
        writer.transport.abort()


def test_proxy_forwards_cuts_both_ways_heals_and_slows():
    async def scenario():
        server_a, port_a = await _echo_server()
        server_b, port_b = await _echo_server()
        proxy = LinkProxy(seed=1)
        proxy.add_link("a", "b", port_b)
        proxy.add_link("b", "a", port_a)
        await proxy.start()
        ab, ba = proxy.links[("a", "b")].port, proxy.links[("b", "a")].port
        try:
            big = bytes(range(256)) * 1000
            assert await _roundtrip(ab, big, 2) == big
            assert await _roundtrip(ba, b"hello", 2) == b"hello"
            # An open connection is reset by a cut; new ones in either direction are black-holed.
            reader, writer = await asyncio.open_connection("127.0.0.1", ab)
            writer.write(b"x")
            assert await asyncio.wait_for(reader.read(1), 2) == b"x"
            proxy.cut("a", "b")
            reset = await asyncio.wait_for(reader.read(1), 2) == b"" if True else None
            assert reset
            writer.transport.abort()
            assert proxy.cut_pairs() == [("a", "b")]
            assert await _roundtrip(ab, b"ping", 0.5) is None
            assert await _roundtrip(ba, b"ping", 0.5) is None
            assert proxy.links[("a", "b")].stats.blackholed >= 1
            proxy.heal()
            assert await _roundtrip(ab, b"back", 2) == b"back"
            # Slow: every chunk waits the delay (each direction), in order.
            proxy.set_slow(delay_s=0.15)
            started = time.monotonic()
            assert await _roundtrip(ab, b"slow", 3) == b"slow"
            assert time.monotonic() - started >= 0.29
            proxy.heal()
            # A partition of three nodes' links only cuts across groups.
            assert proxy.partition([["a"], ["b"]]) == [("a", "b")]
            proxy.heal()
            assert proxy.cut_pairs() == []
            # The destination being down looks like a closed port.
            server_b.close()
            await server_b.wait_closed()
            assert await _roundtrip(ab, b"x", 1) is None
            assert proxy.links[("a", "b")].stats.refused_upstream >= 1
        finally:
            await proxy.close()
            server_a.close()
            server_b.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_proxy_refuses_non_loopback():
    with pytest.raises(ValueError):
        LinkProxy(host="0.0.0.0")
    with pytest.raises(ValueError):
        LinkProxy().add_link("a", "b", 1, target_host="10.0.0.1")


# --------------------------------------------------------------------------- plan


def test_plan_is_a_function_of_the_seed_and_covers_every_kind():
    kinds = list(FAULT_KINDS)
    a = plan_faults(1, 300, kinds, 4)
    assert a == plan_faults(1, 300, kinds, 4)
    assert a != plan_faults(2, 300, kinds, 4)
    for seed in range(1, 30):
        plan = plan_faults(seed, 300, kinds, 4)
        assert {s.kind for s in plan} == set(FAULT_KINDS), seed
        assert {s.detail["shape"] for s in plan if s.kind == "partition"} == {"isolate", "split", "ring"}
        order = [s.kind for s in plan]
        assert order.index("kill") < order.index("killall")
        for prev, step in itertools.pairwise(plan):
            assert step.at_s >= prev.at_s + prev.duration_s  # one fault at a time
        assert all(4 <= s.at_s and s.at_s + s.duration_s <= 296 + 0.1 for s in plan)
    short = plan_faults(7, 60, ["kill", "partition", "pause"], 4)
    assert {s.kind for s in short} == {"kill", "partition", "pause"}
    assert plan_faults(1, 60, [], 4) == []


def test_old_kinds_keep_their_plans():
    """Adding kinds must not change the schedule a seed gives for the kinds it asks for."""
    plan = plan_faults(7, 60, ["kill", "killall", "partition", "pause"], 4)
    assert [(s.kind, s.at_s, s.duration_s) for s in plan] == [
        ("kill", 4.0, 6.5), ("partition", 15.3, 10.1), ("killall", 29.7, 1.7), ("pause", 35.0, 4.5),
        ("kill", 42.7, 4.1)]


def test_plan_of_the_overlapping_clock_and_byzantine_faults():
    names = validator_names(4)
    for seed in range(1, 40):
        plan = plan_faults(seed, 120, ["lag", "clock", "tamper"], 4)
        assert {s.kind for s in plan} == {"lag", "clock", "tamper"}, seed
        for step in plan:
            d = step.detail
            assert step.describe() and step.describe() != step.kind
            if step.kind == "lag":
                assert d["lagger"] in names and d["faulty"] in names and d["lagger"] != d["faulty"]
                assert d["mode"] in ("stop", "kill") and d["ahead"] >= 3
            elif step.kind == "clock":
                assert d["node"] in names and d["offset_ms"] != 0
                assert -11 * 60_000 <= d["offset_ms"] <= 10 * 365 * 86_400_000 + 60_000
            else:
                honest = set(names) - {d["victim"]}
                assert set(d["targets"]) < honest and d["targets"]  # some peers, never all: a mix
                assert d["lagger"] in d["targets"]
    assert plan_faults(5, 120, ["lag", "clock", "tamper"], 4) == plan_faults(5, 120, ["lag", "clock", "tamper"], 4)
    # With fewer than 4 validators one more node down halts the chain: no lag or tamper steps then.
    assert {s.kind for s in plan_faults(1, 120, ["lag", "clock", "tamper"], 3)} == {"clock"}
    assert format_offset(-600_000) == "-10.0min"
    assert format_offset(10 * 365 * 86_400_000) == "+10.0y"


def test_ring_of_majorities():
    for n in (3, 4, 5, 7):
        names = validator_names(n)
        cut = {frozenset(p) for p in ring_cut_pairs(names)}
        seen = []
        for node in names:
            view = {node} | {o for o in names if o != node and frozenset((node, o)) not in cut}
            assert len(view) > n // 2, (n, node, view)  # everyone sees a majority
            seen.append(frozenset(view))
        if n >= 4:
            assert len(set(seen)) == n  # ... and no two the same one
            assert cut  # something is cut


# --------------------------------------------------------------------------- checker replay


def _fake_chain():
    """A genesis with two accounts and a hand-made chain in the REST JSON shape."""
    keys = [bytes([i + 1]) * 32 for i in range(2)]
    addrs = [address_hash(derive_public_key(k)) for k in keys]
    genesis, _ = make_genesis("drill-test", 1, [(addrs[0], 1000), (addrs[1], 500)], seed=b"t")
    net = types.SimpleNamespace(chain_id=genesis.chain_id, genesis=genesis, supply=1500)
    a, b = (encode_address(x) for x in addrs)
    proposer = encode_address(genesis.validators[0].address)
    g = genesis_txid(genesis.chain_id).hex()

    def tx(txid, inputs, outputs):
        return {"txid": txid, "inputs": [{"prev_txid": t, "prev_index": i} for t, i in inputs],
                "outputs": [{"address": ad, "amount": am} for ad, am in outputs]}

    blocks = [
        {"height": 1, "hash": "h1", "header": {"proposer": proposer},
         "txs": [tx("t1", [(g, 0)], [(b, 300), (a, 690)])]},
        {"height": 2, "hash": "h2", "header": {"proposer": proposer}, "txs": []},
        {"height": 3, "hash": "h3", "header": {"proposer": proposer},
         "txs": [tx("t2", [("t1", 0)], [(a, 295)])]},
    ]
    return net, blocks, a, b, proposer


def test_replay_accounts_fees_and_balances_at_every_height():
    net, blocks, a, b, proposer = _fake_chain()
    checker = Checker(net, None, None, None, False)
    r = checker.replay(blocks)
    assert r["double_spends"] == [] and r["missing"] == [] and r["dup_txids"] == [] and r["inflation"] == []
    assert r["supply"] == [1500] * 4
    assert r["txs"] == {"t1": (1, 0), "t2": (3, 0)}
    assert [r["balance_at"](a, h) for h in range(4)] == [1000, 690, 690, 985]
    assert [r["balance_at"](b, h) for h in range(4)] == [500, 800, 800, 500]
    assert [r["balance_at"](proposer, h) for h in range(4)] == [0, 10, 10, 15]
    fee_txid = fee_outpoint(net.chain_id, 1).txid.hex()
    # The proposer can spend its fee output.
    blocks.append({"height": 4, "hash": "h4", "header": {"proposer": proposer},
                   "txs": [{"txid": "t3", "inputs": [{"prev_txid": fee_txid, "prev_index": 0}],
                            "outputs": [{"address": a, "amount": 10}]}]})
    r = checker.replay(blocks)
    assert r["missing"] == [] and r["balance_at"](a, 4) == 995 and r["supply"][-1] == 1500


def test_replay_catches_double_spends_and_phantom_inputs():
    net, blocks, a, b, proposer = _fake_chain()
    g = genesis_txid(net.chain_id).hex()
    blocks[1]["txs"] = [{"txid": "evil", "inputs": [{"prev_txid": g, "prev_index": 0}],
                         "outputs": [{"address": b, "amount": 1000}]},
                        {"txid": "phantom", "inputs": [{"prev_txid": "00" * 32, "prev_index": 0}],
                         "outputs": [{"address": b, "amount": 7}]}]
    r = Checker(net, None, None, None, False).replay(blocks)
    assert [d["txid"] for d in r["double_spends"]] == ["evil"]
    assert [m["txid"] for m in r["missing"]] == ["phantom"]
    assert [i["txid"] for i in r["inflation"]] == ["evil", "phantom"]
    assert r["supply"][2] != 1500  # money from nowhere shows in the supply line too


# --------------------------------------------------------------------------- Byzantine tampering


def _signed_block(height: int, with_tx: bool) -> Block:
    key = bytes([7]) * 32
    txs = ()
    if with_tx:
        txs = (sign_transaction("drill-test", [(OutPoint(bytes([1]) * 32, 0), key)],
                                [TxOutput(address_hash(derive_public_key(key)), 5)]),)
    header = Header("drill-test", height, 1_000 + height, ZERO_HASH, compute_tx_root(txs), ZERO_HASH,
                    bytes(20), ZERO_HASH, ZERO_HASH, ZERO_HASH, EMPTY_INPUTS_HASH, ZERO_HASH)
    return Block(header, txs, None)


def test_tampered_block_keeps_its_id_but_not_its_bytes():
    block = _signed_block(1, with_tx=True)
    check_block_body(block)
    forged = Block.decode(tamper_block(block.encode()))
    assert forged.hash == block.hash  # same header: the same id and the same proposal signature
    assert forged.txs[0].txid == block.txs[0].txid and forged.txs[0].wtxid != block.txs[0].wtxid
    tx, bad = block.txs[0], forged.txs[0]
    digest = signing_digest(tx, "drill-test")
    assert verify_signature(tx.inputs[0].public_key, digest, tx.inputs[0].signature)
    assert not verify_signature(bad.inputs[0].public_key, digest, bad.inputs[0].signature)  # high-S
    with pytest.raises(BlockError):
        check_block_body(forged)  # the id covers every byte: the copy is not the certified block
    assert tamper_block(_signed_block(2, with_tx=False).encode()) is None


def test_tampered_sync_and_round_state_answers():
    empty, full = _signed_block(1, with_tx=False), _signed_block(2, with_tx=True)
    commit = Commit(2, 0, full.hash, ())
    batch = encode_block_batch([(empty.encode(), Commit(1, 0, empty.hash, ()).encode()),
                                (full.encode(), commit.encode())])
    body, height = tamper_block_batch(batch)
    assert height == 2
    (b1, _), (b2, c2) = decode_block_batch(body)
    assert b1.encoded == empty.encode() and b2.hash == full.hash and b2.encoded != full.encode() and c2 == commit
    assert tamper_block_batch(encode_block_batch([(empty.encode(), commit.encode())]))[1] is None
    vote_like = encode_consensus_message(Decided(empty.encode(), Commit(1, 0, empty.hash, ())))
    answer = [vote_like, encode_consensus_message(Decided(full.encode(), commit))]
    forged, heights = tamper_decided(answer)
    assert heights == [2] and forged[0] == vote_like  # a decided block without transactions stays as it was
    [(message, _)] = decode_consensus_batch((1).to_bytes(4, "big") + forged[1])
    assert message.value != full.encode() and message.commit == commit and Block.decode(message.value).hash == full.hash
    # Which peers: the names given, or a fixed choice per seed.
    assert "validator-1" in Targets(0, ["validator-1"]) and "validator-2" not in Targets(0, ["validator-1"])
    urls = [f"validator-{p}" for p in range(100)]
    assert [u in Targets(5) for u in urls] == [u in Targets(5) for u in urls]
    assert 0 < sum(u in Targets(5) for u in urls) < 100


# --------------------------------------------------------------------------- liveness and block times


def test_stall_after_a_heal_is_measured_from_answers_asked_after_it():
    net = types.SimpleNamespace(names=["a", "b"], check_crashes=lambda: [])
    monitor = HeightMonitor(net, types.SimpleNamespace(http=None), bound_s=0.5)
    monitor.observe("a", 5, 0.0, 0.0, 100.0)
    point = monitor.heal("restart a", 1.0)
    t = point.t
    monitor.observe("b", 6, t - 0.1, t + 0.2, 101.0)  # asked before the heal: does not count
    assert point.stall_s is None and monitor.tip == 6 and monitor.seen_wall == {1: 100.0, 2: 100.0, 3: 100.0,
                                                                               4: 100.0, 5: 100.0, 6: 101.0}
    monitor.observe("a", 6, t + 0.1, t + 0.3, 101.5)  # not above the height at the heal
    assert point.stall_s is None
    monitor.observe("a", 7, t + 0.1, t + 1.25, 102.0)
    assert point.stall_s == 1.25
    stuck = monitor.heal("heal partition", 2.0)
    asyncio.run(monitor.settle())  # bounded by bound_s
    assert stuck.timed_out and stuck.stall_s is None
    report = monitor.report()
    assert report["longest_stall_s"] == 1.25 and report["exceeded"] == ["heal partition"]


def test_block_times_must_lie_within_the_honest_clocks():
    seen = {1: 1_000.0, 2: 1_001.0, 3: 1_002.0}
    ok = block_time_findings([(1, 999_000), (2, 1_000_500), (3, 1_001_900)], 990.0, seen, 1_100.0)
    assert ok["not_increasing"] == [] and ok["early"] == [] and ok["late"] == []
    skewed = block_time_findings(
        [(1, 999_000), (2, 999_000), (3, 1_002_000 + 365 * 86_400_000), (4, 900_000)], 990.0, seen, 1_100.0)
    assert skewed["not_increasing"] == [2, 4]
    assert [x["height"] for x in skewed["late"]] == [3]  # a year ahead of when the drill saw it
    assert [x["height"] for x in skewed["early"]] == [4]  # before the drill started


# --------------------------------------------------------------------------- real drills


def _run(tmp_path: Path, seed: int, duration: float, faults: tuple[str, ...]):
    opts = DrillOptions(seed=seed, duration_s=duration, faults=faults, home=tmp_path / "drill",
                        json_path=tmp_path / "drill.json")
    lines: list[str] = []
    result = run_drill_sync(opts, out=lines.append)
    table = format_table(result, opts)
    print("\n".join(lines))
    print(table)
    return result, table


def _assert_clean(result, table: str, faults) -> None:
    assert result.ok, table
    checks = {c.name: c for c in result.checks}
    assert checks["lost acknowledged transactions"].value == "0"
    assert int(checks["acknowledged committed"].value) > 20, table
    applied = checks["faults applied"].value
    for kind in faults:
        assert kind in applied, table


@pytest.mark.processes
@pytest.mark.timeout(420)
def test_ci_drill_60s_kills_partition_pause(tmp_path):
    """The CI drill: seed 7, 60 s, SIGKILL of one and of all validators, a partition and a pause."""
    faults = ("kill", "killall", "partition", "pause")
    result, table = _run(tmp_path, 7, 60, faults)
    _assert_clean(result, table, faults)


@pytest.mark.processes
@pytest.mark.timeout(420)
def test_drill_60s_lagging_node_and_skewed_clock(tmp_path):
    """Seed 1, 60 s: a paused validator falls 3+ heights behind, a second goes down, the first resumes and the
    chain must move on with 3 of 4 (the stall a user hit); then one validator's clock runs a year ahead."""
    faults = ("lag", "clock")
    result, table = _run(tmp_path, 1, 60, faults)
    _assert_clean(result, table, faults)
    checks = {c.name: c for c in result.checks}
    assert checks["longest stall after a heal"].ok, table
    assert result.report["liveness"]["heals"] >= 3, table
    assert any(name.startswith("block times within") and c.ok for name, c in checks.items()), table


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [2, 3])
def test_drill_byzantine_tampering(tmp_path, seed):
    """A Byzantine validator serves tampered blocks while a targeted node lags behind it (run with --runslow)."""
    faults = ("tamper", "lag", "clock")
    result, table = _run(tmp_path, seed, 120, faults)
    _assert_clean(result, table, faults)
    checks = [c for c in result.checks if c.name.startswith("tamper by")]
    assert checks and all(c.ok for c in checks), table


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_drill_all_faults(tmp_path, seed):
    """300 s with every fault kind, the twin included (run with --runslow)."""
    result, table = _run(tmp_path, seed, 300, FAULT_KINDS)
    _assert_clean(result, table, FAULT_KINDS)
    checks = {c.name: c for c in result.checks}
    assert any(name.startswith("twin evidence") and c.ok for name, c in checks.items()), table


# --------------------------------------------------------------------------- served balances


def _check_served_balances(serve, top: int = 11, answer_height=lambda h: h):
    """Run the drill's served-balance check on ``top`` heights against two mock nodes that answer balances with
    ``serve(address, height)`` and the batch route's height with ``answer_height``; (its result, the requests)."""
    import httpx

    from devnet.drill.checks import Checker
    accounts, validators = [bytes([1]) * 20, bytes([2]) * 20], {"validator-0": bytes([3]) * 20}
    requests: list[tuple[str, str, tuple[str, ...], int]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        node, h = request.url.host, int(request.url.params["height"])
        if request.url.path == "/v1/balances":
            names = request.url.params["addresses"].split(",")
            requests.append((node, "many", tuple(names), h))
            return httpx.Response(200, json={"height": answer_height(h), "balances": [
                {"address": a, "balance": serve(a, h)} for a in names]})
        address = request.url.path.split("/")[3]
        requests.append((node, "one", (address,), h))
        return httpx.Response(200, json={"height": h, "address": address, "balance": serve(address, h)})

    net = types.SimpleNamespace(names=["a", "b"], url=lambda node: f"http://{node}", account_addresses=accounts,
                                validator_addresses=validators, supply=100)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    checker = Checker(net, None, None, http, twin_enabled=False, out=lambda line: None)

    async def go():
        async with http:
            return await checker.check_api_balances(top, {"balance_at": TRUTH})
    return asyncio.run(go()), requests


FIRST, SECOND, THIRD = (encode_address(bytes([b]) * 20) for b in (1, 2, 3))


def TRUTH(address: str, height: int) -> int:  # noqa: N802  (a table, named like one)
    """Balances that move at every height and always sum to 100."""
    return {FIRST: 60 - height, SECOND: 40, THIRD: height}[address]


def test_served_balances_are_asked_of_both_routes_at_every_height(monkeypatch):
    """Every height is asked of the batch route for every address (in lists of at most ``MAX_BALANCES``) and of
    the one-address route for one address, so that every node is asked about every address by both routes."""
    (bad_supply, mismatch, queries), requests = _check_served_balances(TRUTH)
    assert (bad_supply, mismatch) == ([], [])
    assert queries == len(requests) == 24
    assert sorted(h for _, route, _, h in requests if route == "many") == list(range(12))
    assert sorted(h for _, route, _, h in requests if route == "one") == list(range(12))
    assert {(node, names[0]) for node, route, names, _ in requests if route == "one"} == \
        {(node, a) for node in ("a", "b") for a in (FIRST, SECOND, THIRD)}
    monkeypatch.setattr("devnet.drill.checks.MAX_BALANCES", 2)
    (bad_supply, mismatch, queries), requests = _check_served_balances(TRUTH)
    assert (bad_supply, mismatch, queries) == ([], [], 36)
    assert {names for _, route, names, _ in requests if route == "many"} == {(FIRST, SECOND), (THIRD,)}


def test_a_wrong_served_balance_at_any_height_is_found():
    """A balance that is wrong at one height (from either route), or right for another height, is a mismatch;
    a batch answered for another height stops the check."""
    (_, mismatch, _), _ = _check_served_balances(lambda a, h: TRUTH(a, h - 1 if h == 5 else h))  # a height late at 5
    assert {(m["height"], m["address"]) for m in mismatch} >= {(5, FIRST), (5, THIRD)}
    assert all(m["height"] == 5 for m in mismatch)
    (bad_supply, mismatch, _), _ = _check_served_balances(lambda a, h: TRUTH(a, h) + (h == 7 and a == THIRD))
    assert bad_supply == [7] and (7, THIRD, "many addresses") in {(m["height"], m["address"], m["route"])
                                                                  for m in mismatch}
    calls: list[tuple[str, int]] = []

    def one_route_lies(a, h):  # the second answer for (SECOND, 2): the one-address route's (asked after the batch)
        calls.append((a, h))
        return TRUTH(a, h) + (h == 2 and calls.count((a, h)) == 2)
    (bad_supply, mismatch, _), _ = _check_served_balances(one_route_lies)
    assert bad_supply == [] and [(m["height"], m["address"], m["route"]) for m in mismatch] == \
        [(2, SECOND, "one address")]
    with pytest.raises(RuntimeError, match="answered for height 3"):
        _check_served_balances(TRUTH, answer_height=lambda h: 3)
