"""Offline checkpoints on real processes: a running node's snapshot exported to a file starts a new node at its
height, checked from the genesis; a damaged, truncated or foreign file is refused and leaves no store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devnet.cluster import NodeSpec, free_ports, start_nodes, stop_nodes, wait_for_height
from node.config import DATA_DIR, GENESIS_FILE, KEY_FILE
from node.crypto import encode_address
from node.home import load_key_file
from node.ledger.snapshot import Manifest
from node.p2p.secret import node_id_of
from tests.netutil import running_network

INTERVAL = 5


def node_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120)


def wait_snapshot(url: str, at_least: int, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = httpx.get(url + "/v1/snapshots", timeout=5).json()["snapshots"]
        if listed and listed[-1]["height"] >= at_least:
            return listed[-1]
        time.sleep(0.2)
    raise AssertionError(f"no snapshot at or above {at_least} within {timeout_s} s")


def test_export_and_start_from_a_snapshot_file(tmp_path):
    with running_network(tmp_path / "net", overrides={"snapshot_interval": INTERVAL}) as net:
        net.wait_height(1)
        bob = net.address("bob")
        assert net.submit(net.transfer("faucet", bob, 7_000, node=0), wait="commit").status_code == 200
        height = httpx.get(net.url(0) + "/v1/status").json()["height"]
        snap = wait_snapshot(net.url(0), height + 1)
        listed = node_cli("snapshot", "list", "--home", str(net.specs[0].home), "--json")
        assert listed.returncode == 0
        assert [s["exportable"] for s in json.loads(listed.stdout)["snapshots"] if s["height"] == snap["height"]] \
            == [True]
        out = tmp_path / "snap.bin"
        exported = node_cli("snapshot", "export", "--home", str(net.specs[0].home), "--height", str(snap["height"]),
                            "--out", str(out), "--json")
        assert exported.returncode == 0, exported.stderr
        genesis = net.specs[0].home / GENESIS_FILE

        # files that do not check out are refused, and leave no store behind
        data = out.read_bytes()
        for name, damaged, code in (("truncated", data[:-100], "snapshot-format"),
                                    ("flipped", data[:-50] + bytes([data[-50] ^ 1]) + data[-49:], "snapshot-chunk")):
            (tmp_path / name).write_bytes(damaged)
            refused = node_cli("init", "--home", str(tmp_path / f"home-{name}"), "--genesis", str(genesis),
                               "--full-node", "--from-snapshot", str(tmp_path / name))
            assert refused.returncode == 2 and code in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
            assert not (tmp_path / f"home-{name}" / DATA_DIR).exists()

        # a good file: the node starts at the snapshot's height and follows the chain from there
        home = tmp_path / "restored"
        ports = free_ports(2)
        peers = ",".join(f"{node_id_of(load_key_file(s.home / KEY_FILE).public_key)}@{s.host}:{s.p2p_port}"
                         for s in net.specs)
        made = node_cli("init", "--home", str(home), "--genesis", str(genesis), "--full-node", "--from-snapshot",
                        str(out), "--port", str(ports[0]), "--p2p-port", str(ports[1]), "--peers", peers,
                        "--name", "restored")
        assert made.returncode == 0, made.stderr
        spec = NodeSpec("restored", home, "127.0.0.1", ports[0], ports[1], role="full")
        try:
            start_nodes([spec])
            target = httpx.get(net.url(1) + "/v1/status").json()["height"] + 2
            assert wait_for_height([spec], target, 60), "the restored node did not follow the chain"
            status = httpx.get(spec.url + "/v1/status").json()
            assert status["earliest_height"] == snap["height"]
            at = status["height"]
            same = httpx.get(net.url(1) + f"/v1/blocks/{at}", params={"min_height": at}).json()["hash"]
            assert httpx.get(spec.url + f"/v1/blocks/{at}").json()["hash"] == same
            pruned = httpx.get(spec.url + "/v1/blocks/1")
            assert pruned.status_code == 410 and pruned.json()["error"]["code"] == "pruned"
            bob_text = encode_address(bob)  # its balance came in the snapshot's outputs
            mine = httpx.get(spec.url + f"/v1/addresses/{bob_text}/balance", params={"height": at}).json()["balance"]
            assert mine == httpx.get(net.url(1) + f"/v1/addresses/{bob_text}/balance",
                                     params={"height": at}).json()["balance"]
            below = httpx.get(spec.url + f"/v1/addresses/{bob_text}/balance", params={"height": 1})
            assert below.status_code == 410
            below = httpx.get(spec.url + f"/v1/addresses/{bob_text}/utxos", params={"height": 1})
            assert below.status_code == 410 and below.json()["error"]["code"] == "pruned"
            manifest = Manifest.decode((net.specs[0].home / "snapshots" / f"{snap['height']}.manifest").read_bytes())
            assert manifest.outputs == snap["outputs"]
        finally:
            stop_nodes([spec], timeout_s=10)

        # a snapshot of another chain is refused
        with running_network(tmp_path / "other", validators=1) as other:
            other_genesis = other.specs[0].home / GENESIS_FILE
            foreign = node_cli("init", "--home", str(tmp_path / "foreign"), "--genesis", str(other_genesis),
                               "--full-node", "--from-snapshot", str(out))
            assert foreign.returncode == 2 and "snapshot-header" in foreign.stderr, foreign.stderr
            assert not (Path(tmp_path / "foreign") / DATA_DIR).exists()
