"""Four real validator processes on loopback: transfers, agreement, double spends,
crashes, restarts and quorum loss."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from node.consensus.records import load_log
from node.consensus.signer import DurableSigner, SignedRecord
from node.crypto import encode_address
from node.types.transaction import COIN
from tests.netutil import running_network

pytestmark = pytest.mark.processes


def balance(net, node, address: bytes, min_height: int | None = None) -> int:
    params = {"min_height": min_height} if min_height is not None else {}
    r = net.client.get(net.url(node) + f"/v1/addresses/{encode_address(address)}/balance", params=params)
    assert r.status_code == 200, r.text
    return r.json()["balance"]


def test_transfers_agree_and_double_spend_commits_once(tmp_path):
    with running_network(tmp_path) as net:
        net.wait_height(1)
        alice, bob, carol = net.address("alice"), net.address("bob"), net.address("carol")
        start_alice = balance(net, 0, alice)
        start_carol = balance(net, 0, carol)
        # Transfers sent to different nodes, waiting for commit.
        tx1 = net.transfer("faucet", alice, 5 * COIN, fee=1000, node=0)
        r1 = net.submit(tx1, node=1, wait="commit")
        assert r1.status_code == 200, r1.text
        assert r1.json()["status"] == "committed"
        tx2 = net.transfer("bob", carol, 7 * COIN, fee=500, node=2)
        r2 = net.submit(tx2, node=3, wait="commit")
        assert r2.status_code == 200, r2.text
        top = max(r1.json()["height"], r2.json()["height"])
        # Read your own write from any node.
        for i in range(4):
            assert balance(net, i, alice, min_height=top) == start_alice + 5 * COIN
            assert balance(net, i, carol, min_height=top) == start_carol + 7 * COIN
        # A double spend sent to two nodes at once: at most one commits.
        utxo = net.utxos(0, encode_address(alice))[0]
        spend_a = net.transfer("alice", bob, 1 * COIN, node=0, utxo=utxo)
        spend_b = net.transfer("alice", carol, 2 * COIN, node=0, utxo=utxo)
        assert spend_a.txid != spend_b.txid
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            fa = pool.submit(net.submit, spend_a, 0)
            fb = pool.submit(net.submit, spend_b, 2)
            statuses = [fa.result().status_code, fb.result().status_code]
        assert 202 in statuses
        # Let a couple of blocks pass so both had every chance to commit.
        h = net.status(0)["height"]
        net.wait_height(h + 3)
        committed = [net.client.get(net.url(0) + f"/v1/txs/{tx.txid.hex()}").json().get("status") == "committed"
                     for tx in (spend_a, spend_b)]
        assert sum(committed) <= 1
        assert sum(committed) == 1  # the network is healthy: exactly one of them made it
        final = max(net.status(i)["height"] for i in range(4))
        net.wait_height(final)
        net.assert_same_chain(final, range(4))
        # Total supply is unchanged: fees went to proposers.
        supply = net.genesis.total_supply
        total = 0
        for name in net.wallets:
            total += balance(net, 0, net.address(name), min_height=final)
        validators = [v["address"] for v in net.client.get(net.url(0) + "/v1/validators").json()["validators"]]
        for address in validators:
            total += net.client.get(net.url(0) + f"/v1/addresses/{address}/balance").json()["balance"]
        assert total == supply
        # Many balances in one answer, at the final height and at the first: each what the one-address route says.
        addresses = [encode_address(net.address(name)) for name in net.wallets] + validators + [validators[0]]
        answers = {}
        for at in (final, 1):
            many = net.client.get(net.url(1) + "/v1/balances", params={"addresses": ",".join(addresses), "height": at})
            assert many.status_code == 200, many.text
            assert many.json()["height"] == at
            assert [b["address"] for b in many.json()["balances"]] == addresses  # in the order asked, twice if twice
            answers[at] = [b["balance"] for b in many.json()["balances"]]
            assert answers[at] == [
                net.client.get(net.url(1) + f"/v1/addresses/{a}/balance", params={"height": at}).json()["balance"]
                for a in addresses]
            assert sum(answers[at][:-1]) == supply
        at_alice = addresses.index(encode_address(alice))
        assert answers[final][at_alice] != answers[1][at_alice]  # the height asked is the height answered


def test_kill_one_restart_catches_up_then_kill_all(tmp_path):
    with running_network(tmp_path) as net:
        net.wait_height(1)
        bob = net.address("bob")
        acked = []
        tx = net.transfer("faucet", bob, COIN, node=0)
        r = net.submit(tx, node=0, wait="commit")
        assert r.status_code == 200
        acked.append(tx.txid)
        net.kill(3)
        # The other three keep committing transfers (f = 1 of 4).
        for k in range(3):
            tx = net.transfer("faucet", bob, COIN + k, node=0)
            r = net.submit(tx, node=k % 3, wait="commit")
            assert r.status_code == 200, r.text
            acked.append(tx.txid)
        h_before = net.status(0)["height"]
        net.start(3)
        net.wait_ready([3])
        net.wait_height(h_before, [3], timeout_s=60)
        # The peer links came back: every node redialed or accepted the restarted one (a second connection).
        name = net.specs[3].name
        deadline = time.monotonic() + 20
        while True:
            links = [next(p for p in net.status(i)["peers"] if p["name"] == name) for i in range(3)]
            if all(p["up"] and p["connects"] >= 2 for p in links) and net.status(3)["p2p"]["peers_up"] == 3:
                break
            assert time.monotonic() < deadline, links
            time.sleep(0.1)
        net.assert_same_chain(h_before, range(4))
        # It rejoins consensus: a new transfer commits with all four up.
        tx = net.transfer("faucet", bob, 2 * COIN, node=0)
        r = net.submit(tx, node=3, wait="commit")
        assert r.status_code == 200, r.text
        acked.append(tx.txid)
        # Its signer state holds at most one signature per (height, round, kind).
        net.stop(3)
        payloads = load_log(str(net.specs[3].home / "signer_state.log"))
        assert len(payloads) > 1
        seen = {}
        for payload in payloads[1:]:  # the first record is the file's header
            rec = SignedRecord.decode(payload)
            key = (rec.height, rec.round, rec.kind)
            assert seen.setdefault(key, rec.block_hash) == rec.block_hash, f"conflicting signatures for {key}"
        # Re-opening the durable signer after the crash and restart accepts its own file.
        DurableSigner(net.specs[3].home / "signer_state.log", net.validator_keys[net.specs[3].name],
                      net.chain_id).close()
        net.start(3)
        net.wait_ready([3])
        # SIGKILL all four at once, restart: the chain continues, nothing acknowledged is lost.
        height_at_crash = max(net.status(i)["height"] for i in range(4))
        for i in range(4):
            net.kill(i)
        net.start()
        net.wait_ready()
        for txid in acked:
            body = net.client.get(net.url(0) + f"/v1/txs/{txid.hex()}").json()
            assert body["status"] == "committed", body
        h = max(net.status(i)["height"] for i in range(4))
        assert h >= height_at_crash
        net.wait_height(h + 2, timeout_s=60)
        tx = net.transfer("faucet", bob, 3 * COIN, node=0)
        assert net.submit(tx, node=1, wait="commit").status_code == 200
        final = min(net.status(i)["height"] for i in range(4))
        net.assert_same_chain(final, range(4))


def test_two_of_four_down_halts_and_resumes(tmp_path):
    with running_network(tmp_path) as net:
        net.wait_height(2)
        net.stop(2)
        net.stop(3)
        time.sleep(0.5)
        stalled = max(net.status(i)["height"] for i in (0, 1))
        # With half the power gone nothing can commit; a transfer waits.
        tx = net.transfer("faucet", net.address("carol"), COIN, node=0)
        assert net.submit(tx, node=0).status_code == 202
        time.sleep(3)
        assert max(net.status(i)["height"] for i in (0, 1)) <= stalled + 1
        # One returns: the chain resumes and the waiting transfer commits.
        net.start(2)
        net.wait_ready([2])
        r = net.client.get(net.url(0) + f"/v1/txs/{tx.txid.hex()}")
        deadline = time.monotonic() + 60
        while r.json().get("status") != "committed" and time.monotonic() < deadline:
            time.sleep(0.2)
            r = net.client.get(net.url(0) + f"/v1/txs/{tx.txid.hex()}")
        assert r.json()["status"] == "committed"
        net.wait_height(r.json()["height"], [0, 1, 2])  # validator-2 may commit that height a moment later
        net.assert_same_chain(r.json()["height"], (0, 1, 2))


def test_acknowledged_pending_transaction_survives_sigkill(tmp_path):
    with running_network(tmp_path) as net:
        net.wait_height(1)
        for i in (1, 2, 3):
            net.stop(i)
        # Only node 0 knows this transaction when it acknowledges it.
        tx = net.transfer("faucet", net.address("dave") if "dave" in net.wallets else net.address("bob"), COIN)
        r = net.submit(tx, node=0)
        assert r.status_code == 202, r.text
        net.kill(0)
        net.start()
        net.wait_ready()
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = net.client.get(net.url(1) + f"/v1/txs/{tx.txid.hex()}").json().get("status")
            if status == "committed":
                break
            time.sleep(0.2)
        assert status == "committed", net.log_tail(0)


def test_no_empty_blocks_when_create_empty_blocks_ms_is_zero(tmp_path):
    """``create_empty_blocks_ms = 0``: an idle chain makes no blocks; a transaction makes one at once."""
    with running_network(tmp_path, validators=2, overrides={"create_empty_blocks_ms": 0}) as net:
        start = max(net.status(i)["height"] for i in range(2))
        time.sleep(2.0)  # an idle second or two: with the default, two empty blocks would come meanwhile
        assert max(net.status(i)["height"] for i in range(2)) == start
        tx = net.transfer("faucet", net.address("bob"), COIN, node=1)
        r = net.submit(tx, node=1, wait="commit")
        assert r.status_code == 200, r.text
        committed = r.json()["height"]
        assert committed == start + 1
        net.wait_height(committed, range(2))
        time.sleep(1.5)
        assert max(net.status(i)["height"] for i in range(2)) == committed
