"""State sync on real processes: a new node copies a snapshot from its peers while one of them serves corrupted
chunks throughout, is SIGKILLed mid-transfer and resumes, and ends at the others' app hash with the blocks below
its snapshot answering 410 pruned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devnet.cluster import NodeSpec, free_ports, pid_alive, read_pid, start_nodes, stop_nodes, wait_for_height
from node.config import GENESIS_FILE, KEY_FILE, NodeConfig
from node.crypto import encode_address
from node.home import init_home, load_key_file
from node.p2p.secret import node_id_of
from tests.netutil import running_network

pytestmark = pytest.mark.processes
INTERVAL = 10


def log_text(home: Path) -> str:
    path = home / "node.log"
    return path.read_text() if path.exists() else ""


def byzantine(spec: NodeSpec) -> subprocess.Popen:
    """The validator's own node, serving every snapshot chunk corrupted (``devnet.byzantine``)."""
    out = open(spec.home / "byzantine.out", "ab")  # noqa: SIM115 (the process keeps it open)
    return subprocess.Popen([sys.executable, "-m", "devnet.byzantine", "--home", str(spec.home), "--corrupt-chunks"],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def test_state_sync_with_a_corrupting_peer_and_a_crash(tmp_path):
    with running_network(tmp_path / "net", overrides={"snapshot_interval": INTERVAL}) as net:
        net.wait_height(1)
        bob = net.address("bob")
        for _ in range(3):  # some state beyond genesis
            assert net.submit(net.transfer("faucet", bob, 5_000, node=0), wait="commit").status_code == 200
        net.stop(3)
        liar = byzantine(net.specs[3])
        joiner: NodeSpec | None = None
        try:
            net.wait_height(INTERVAL + 2, indexes=[0, 1, 2])
            # the joiner: a full node whose home holds no state; its link is slowed so the transfer takes time
            home = tmp_path / "joiner"
            rest, p2p = free_ports(2)
            peers = tuple(f"{node_id_of(load_key_file(s.home / KEY_FILE).public_key)}@{s.host}:{s.p2p_port}"
                          for s in net.specs)
            config = NodeConfig(name="joiner", port=rest, p2p_port=p2p, peers=peers, p2p_delay_ms=150,
                                log_level="DEBUG", log_file=str(home / "node.log"))
            init_home(home, net.specs[0].home / GENESIS_FILE, None, config, state_sync=True)
            joiner = NodeSpec("joiner", home, "127.0.0.1", rest, p2p, role="full")
            start_nodes([joiner])
            chunks = home / "statesync" / "chunks"
            deadline = time.monotonic() + 60
            while not (chunks.exists() and len(list(chunks.glob("*"))) >= 20):
                assert time.monotonic() < deadline, log_text(home)[-3000:]
                time.sleep(0.05)
            os.kill(read_pid(home), signal.SIGKILL)  # mid-transfer
            deadline = time.monotonic() + 10
            while pid_alive(read_pid(home)):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            kept = len(list(chunks.glob("*")))
            assert 20 <= kept < 256
            start_nodes([joiner])
            target = httpx.get(net.url(0) + "/v1/status").json()["height"] + 2
            assert wait_for_height([joiner], target, 90), log_text(home)[-3000:]
            text = log_text(home)
            assert "state sync done" in text and "leaving out peer validator-3" in text
            done = [line for line in text.splitlines() if "state sync done" in line][-1]
            assert "chunks_skipped=0" not in done  # the chunks kept before the crash were not fetched again
            status = httpx.get(joiner.url + "/v1/status").json()
            snap_height = status["earliest_height"]
            assert snap_height % INTERVAL == 0 and snap_height >= INTERVAL
            at = status["height"]
            assert httpx.get(joiner.url + f"/v1/blocks/{at}").json()["hash"] == \
                httpx.get(net.url(1) + f"/v1/blocks/{at}", params={"min_height": at}).json()["hash"]
            pruned = httpx.get(joiner.url + "/v1/blocks/1")
            assert pruned.status_code == 410 and pruned.json()["error"]["code"] == "pruned"
            where = f"/v1/addresses/{encode_address(bob)}/balance"
            assert httpx.get(joiner.url + where, params={"height": at}).json()["balance"] == \
                httpx.get(net.url(1) + where, params={"height": at}).json()["balance"]
        finally:
            if joiner is not None:
                stop_nodes([joiner], timeout_s=10)
            if liar.poll() is None:
                liar.send_signal(signal.SIGTERM)
                try:
                    liar.wait(10)
                except subprocess.TimeoutExpired:
                    liar.kill()
