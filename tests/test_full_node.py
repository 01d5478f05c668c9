"""Full nodes: a node whose key is not in genesis follows the chain, executes every block, serves REST and
never signs; ``ledger-node init`` makes one only when asked (``--full-node``), ``ledger-devnet add-node`` adds
one to a running devnet."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devnet import cli as devnet_cli
from devnet.cluster import free_ports, load_network
from node.config import SIGNER_FILE
from node.consensus.signer import load_log
from wallet.keystore import load_keystore


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_init_refuses_a_key_that_is_not_a_validator_unless_full_node(tmp_path):
    done = subprocess.run([sys.executable, "-m", "genesis", "new", "--validators", "1", "--out", "net/genesis.json",
                           "--seed", "02"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    refused = run_cli("init", "--home", "a", "--genesis", "net/genesis.json", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "not one of the 1 validators" in refused.stderr and "--full-node" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "a").exists()
    full = run_cli("init", "--home", "b", "--genesis", "net/genesis.json", "--full-node", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["peer_address"].startswith(json.loads(full.stdout)["node_id"] + "@")
    validator = run_cli("init", "--home", "c", "--genesis", "net/genesis.json", "--key",
                        "net/keys/validator-0.json", cwd=tmp_path)
    assert validator.returncode == 0, validator.stderr


def test_add_node_follows_the_chain_serves_rest_and_never_signs(tmp_path, capsys):
    home = tmp_path / "net"
    base = free_ports(1)[0]
    try:  # `down` in the end, whatever fails (the first `up` included: it starts nodes before it can fail)
        assert devnet_cli.main(["up", "--home", str(home), "--validators", "3", "--base-port", str(base)]) == 0
        capsys.readouterr()
        assert devnet_cli.main(["add-node", "--home", str(home), "--json"]) == 0
        added = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert added["name"] == "full-0"
        spec = next(s for s in load_network(home) if s.name == "full-0")
        assert spec.role == "full"
        client = httpx.Client(timeout=10)
        status = client.get(added["url"] + "/v1/status").json()
        assert status["is_validator"] is False and status["p2p"]["peers_up"] == 3
        # A payment sent through the full node commits, verified by the wallet from its pinned genesis.
        bob = load_keystore(home / "wallets" / "bob.json").address
        sent = subprocess.run([sys.executable, "-m", "wallet.cli", "--wallet", str(home / "wallets" / "faucet.json"),
                               "--node", added["url"], "--json", "send", bob, "1", "--wait"],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        height = json.loads(sent.stdout)["height"]
        validator_url = next(s for s in load_network(home) if s.role == "validator").url
        block = client.get(validator_url + f"/v1/blocks/{height}").json()
        assert block["hash"] == client.get(added["url"] + f"/v1/blocks/{height}").json()["hash"]
        # It follows new heights and never signs: no signer state, and no certificate names it.
        deadline = time.monotonic() + 30
        while client.get(added["url"] + "/v1/status").json()["height"] < height + 2:
            assert time.monotonic() < deadline, "the full node stopped following"
            time.sleep(0.1)
        # Its signer exists (a full node may join the set) but has signed nothing: only its header is logged.
        assert len(load_log(str(spec.home / SIGNER_FILE))) == 1
        validators = {v["address"] for v in client.get(validator_url + "/v1/validators").json()["validators"]}
        assert status["validator_address"] not in validators
        # The devnet's commands treat it like any node.
        assert devnet_cli.main(["status", "--home", str(home), "--json"]) == 0
        nodes = json.loads(capsys.readouterr().out)["nodes"]
        assert [n["name"] for n in nodes] == ["validator-0", "validator-1", "validator-2", "full-0"]
        assert all(n["running"] for n in nodes)
    finally:
        devnet_cli.main(["down", "--home", str(home)])


def test_node_status_and_show_height(tmp_path):
    """``ledger-node status`` asks a running node (by home or URL); ``show --height H`` shows block H."""
    from tests.netutil import running_network

    with running_network(tmp_path, validators=1) as net:
        net.wait_height(2)
        home = net.specs[0].home
        by_home = run_cli("status", "--home", str(home), cwd=tmp_path)
        assert by_home.returncode == 0, by_home.stderr
        assert "(validator)" in by_home.stdout and "catching up: no" in by_home.stdout
        hostport = net.url(0).removeprefix("http://")
        by_url = run_cli("status", "--node", hostport, "--json", cwd=tmp_path)
        assert by_url.returncode == 0 and json.loads(by_url.stdout)["node_name"] == net.specs[0].name
        net.stop(0)
        gone = run_cli("status", "--home", str(home), "--timeout", "1", cwd=tmp_path)
        assert gone.returncode == 1 and "no answer" in gone.stderr and "Traceback" not in gone.stderr
        block = run_cli("show", "--home", str(home), "--height", "1", cwd=tmp_path)
        assert block.returncode == 0 and json.loads(block.stdout)["header"]["height"] == 1
        tip = run_cli("show", "tip", "--home", str(home), "--height", "1", cwd=tmp_path)
        assert tip.returncode == 2 and "show block --height 1" in tip.stderr


def test_a_taken_port_stops_the_node_before_it_signs_anything(tmp_path):
    import socket

    done = subprocess.run([sys.executable, "-m", "genesis", "new", "--validators", "1", "--out", "net/genesis.json",
                           "--seed", "03"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rest, p2p = free_ports(2)
    init = run_cli("init", "--home", "v", "--genesis", "net/genesis.json", "--key", "net/keys/validator-0.json",
                   "--port", str(rest), "--p2p-port", str(p2p), cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    for busy in (rest, p2p):
        holder = socket.socket()
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        try:
            started = run_cli("start", "--home", "v", cwd=tmp_path)
        finally:
            holder.close()
        assert started.returncode == 4, started.stderr
        assert "cannot listen" in started.stderr and "Traceback" not in started.stderr
        assert "node started" not in started.stderr, started.stderr
    shown = run_cli("show", "--home", "v", cwd=tmp_path)
    assert json.loads(shown.stdout)["height"] == 0  # nothing was committed
