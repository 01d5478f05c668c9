"""A validator that comes back after its peers pruned the blocks it lacks switches to state sync by itself.

Real processes: four validators keep 10 blocks and snapshot every 10 heights; validator-3 stops a little below
the height the others' first pruning cuts at, while they go on, with transfers, until every one of them has
pruned the next height it needs.  Restarted, it finds that no peer serves that height, records a request,
executes itself again (same process id), copies a snapshot while collecting the blocks after it, and ends on
the others' chain and balances, signing again.
"""

from __future__ import annotations

import time

import httpx
import pytest

from devnet.cluster import read_pid
from node.crypto import encode_address
from node.ledger.pruning import BATCH_HEIGHTS
from tests.netutil import running_network

pytestmark = pytest.mark.processes
OVERRIDES = {"snapshot_interval": 10, "retain_blocks": 10, "create_empty_blocks_ms": 50}
FIRST_PRUNED_FROM = OVERRIDES["retain_blocks"] + BATCH_HEIGHTS + 2
"""The earliest height after the first pruning: a node prunes once it holds ``retain_blocks + BATCH_HEIGHTS``
blocks more than its earliest one (at height 111 here), down to its last ``retain_blocks`` (from 102)."""
AWAY_AT = FIRST_PRUNED_FROM - 25
"""Where validator-3 stops: below the first pruning's cut, and close to it, since each height the others make
without it is slow (one in four has it as proposer, and waits out a round's timeouts: about 2 s)."""


def test_a_returning_validator_behind_every_peers_pruning_state_syncs(tmp_path):
    with running_network(tmp_path / "net", overrides=OVERRIDES) as net:
        net.wait_height(AWAY_AT - 2, timeout_s=120)
        bob = net.address("bob")
        where = f"/v1/addresses/{encode_address(bob)}/balance"
        before = httpx.get(net.url(0) + where).json()["balance"]
        assert net.submit(net.transfer("faucet", bob, 5_000, node=0), wait="commit").status_code == 200
        net.stop(3)
        away_at = net.status(0)["height"]
        assert away_at + 1 < FIRST_PRUNED_FROM, away_at  # (else the wait below is for a second pruning, 100 heights on)
        deadline = time.monotonic() + 120
        while True:  # the others go on until every one of them serves blocks from above away_at + 1 only
            earliest = [net.status(i)["earliest_height"] for i in range(3)]
            if min(earliest) > away_at + 1:
                break
            assert time.monotonic() < deadline, f"no pruning yet: earliest heights {earliest}"
            time.sleep(0.5)
        for _ in range(2):  # money moves while validator-3 is away
            assert net.submit(net.transfer("faucet", bob, 7_000, node=1), wait="commit").status_code == 200

        net.start(3)
        pid = net.pid(3)
        target = net.status(0)["height"] + 5
        try:
            net.wait_height(target, indexes=[3], timeout_s=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{net.log_tail(3, 80)}") from None
        assert net.pid(3) == pid == read_pid(net.specs[3].home)  # it executed itself again, same process id
        log = (net.specs[3].home / "stdout.log").read_text()
        assert "stopping to state-sync" in log and "state sync done" in log, net.log_tail(3, 80)
        assert not (net.specs[3].home / "statesync" / "requested").exists()
        status = net.status(3)
        assert status["earliest_height"] > away_at + 1  # its state came from a snapshot above where it stopped
        at = status["height"]
        assert httpx.get(net.url(3) + f"/v1/blocks/{at}").json()["header"]["app_hash"] == \
            httpx.get(net.url(0) + f"/v1/blocks/{at}", params={"min_height": at}).json()["header"]["app_hash"]
        assert httpx.get(net.url(3) + where, params={"min_height": at}).json()["balance"] == \
            httpx.get(net.url(0) + where, params={"min_height": at}).json()["balance"] == before + 19_000
        # and it is a validator again: its signature is in a later certificate (one of the next ten: a certificate
        # needs only three of the four precommits, so a late one of validator-3's may be left out of any one)
        address = status["validator_address"]
        later = at + 10
        net.wait_height(later, indexes=[0])
        signers = {s["validator"] for h in range(at + 2, later + 1)
                   for s in httpx.get(net.url(0) + f"/v1/blocks/{h}").json()["last_commit"]["signatures"]}
        assert address in signers


def test_a_peer_claiming_to_have_pruned_everything_stops_nobody(tmp_path):
    """One Byzantine peer (validator-3's key) announces a height one above the tip and an earliest height above
    that, over and over: the honest validators keep committing, so the claim never holds for the grace period
    without progress; nobody looks for a snapshot or stops, and the chain goes on."""
    import asyncio

    from genesis.document import genesis_hash, load_genesis, validator_set_of
    from node.config import GENESIS_FILE, KEY_FILE, load_config
    from node.home import load_key_file
    from node.p2p.setup import build_reactor

    async def lie(net, seconds: float) -> None:
        home = net.specs[3].home
        genesis = load_genesis(home / GENESIS_FILE)
        reactor = build_reactor(load_config(home), load_key_file(home / KEY_FILE).private_key, genesis.chain_id,
                                genesis_hash(genesis), lambda: [v.public_key for v in validator_set_of(genesis)],
                                lambda height: None)
        tip = [0]
        reactor.own_height = lambda: (tip[0] + 1, tip[0] + 2)
        await reactor.switch.listen()
        reactor.switch.start_dialing()
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                status = await asyncio.to_thread(net.status, 0)
                tip[0] = max(tip[0], status["height"] if status else 0)
                reactor.broadcast_height()
                await asyncio.sleep(0.3)
        finally:
            await reactor.switch.stop()

    with running_network(tmp_path / "net") as net:
        net.wait_height(2)
        net.stop(3)
        pids = [net.pid(i) for i in range(3)]
        before = net.status(0)["height"]
        asyncio.run(lie(net, 20))
        after = net.status(0)["height"]
        assert after >= before + 5, (before, after)
        assert [net.pid(i) for i in range(3)] == pids
        logs = [(net.specs[i].home / "stdout.log").read_text() for i in range(3)]
        assert not any("stopping to state-sync" in log for log in logs)
        # the lie was heard, and never even led to a look for a snapshot: nodes that commit are not stuck
        assert any("every peer ahead pruned height" in log for log in logs), net.log_tail(0, 60)
        assert not any("stopping to state-sync" in log or "none offers a snapshot above" in log for log in logs)
