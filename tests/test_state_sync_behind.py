"""A validator that comes back after its peers pruned the blocks it lacks switches to state sync by itself.

Real processes: four validators keep 10 blocks and snapshot every 10 heights; validator-3 stops at a low
height while the others go on, with transfers, until every one of them has pruned the next height it needs.
Restarted, it finds that no peer serves that height, records a request, executes itself again (same process
id), copies a snapshot while collecting the blocks after it, and ends on the others' chain and balances,
signing again.
"""

from __future__ import annotations

import time

import httpx
import pytest

from devnet.cluster import read_pid
from node.crypto import encode_address
from tests.netutil import running_network

pytestmark = pytest.mark.processes
OVERRIDES = {"snapshot_interval": 10, "retain_blocks": 10, "create_empty_blocks_ms": 50}


def test_a_returning_validator_behind_every_peers_pruning_state_syncs(tmp_path):
    with running_network(tmp_path / "net", overrides=OVERRIDES) as net:
        net.wait_height(2)
        bob = net.address("bob")
        where = f"/v1/addresses/{encode_address(bob)}/balance"
        before = httpx.get(net.url(0) + where).json()["balance"]
        assert net.submit(net.transfer("faucet", bob, 5_000, node=0), wait="commit").status_code == 200
        net.stop(3)
        away_at = net.status(0)["height"]
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
        net.wait_height(target, indexes=[3], timeout_s=90)
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
        # and it is a validator again: its signature is in a later certificate
        address = status["validator_address"]
        later = at + 3
        net.wait_height(later, indexes=[0])
        signers = {s["validator"] for s in
                   httpx.get(net.url(0) + f"/v1/blocks/{later}").json()["last_commit"]["signatures"]}
        assert address in signers
