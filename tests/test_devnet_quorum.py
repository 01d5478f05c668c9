"""Quorum you can see: ``ledger-devnet status`` reports the voting power up and exits 1 without a quorum;
``up`` starts the nodes that are down; ``start --all`` starts every stopped node."""

from __future__ import annotations

import json

from devnet import cli
from devnet.cluster import free_ports


def status(home, capsys) -> tuple[int, dict]:
    capsys.readouterr()  # what came before
    code = cli.main(["status", "--json", "--timeout", "1", "--home", str(home)])
    return code, json.loads(capsys.readouterr().out)


def test_status_quorum_up_starts_missing_nodes_and_start_all(tmp_path, capsys):
    home = tmp_path / "net"
    try:  # `down` in the end, whatever fails (the first `up` included: it starts nodes before it can fail)
        assert cli.main(["up", "--home", str(home), "--base-port", str(free_ports(1)[0])]) == 0
        capsys.readouterr()
        code, obj = status(home, capsys)
        assert code == 0 and obj["quorum"] is True and obj["power_up"] == obj["power_total"]
        for name in ("validator-1", "validator-2", "validator-3"):
            assert cli.main(["kill", name, "--home", str(home)]) == 0
        code, obj = status(home, capsys)
        assert code == 1 and obj["quorum"] is False and 0 < obj["power_up"] < obj["power_total"]
        assert cli.main(["status", "--home", str(home), "--timeout", "1"]) == 1
        assert "quorum: NO" in capsys.readouterr().out
        assert cli.main(["start", "--all", "--home", str(home)]) == 0
        out = capsys.readouterr().out
        assert "validator-0 is already running" in out and out.count("started validator-") == 3
        code, obj = status(home, capsys)
        assert code == 0 and all(n["running"] for n in obj["nodes"])
        for name in ("validator-0", "validator-2"):
            assert cli.main(["kill", name, "--home", str(home)]) == 0
        capsys.readouterr()
        assert cli.main(["up", "--home", str(home)]) == 0  # starts the two that are down
        out = capsys.readouterr().out
        assert "2 of 4 nodes up; starting the others (validator-0, validator-2)" in out
        code, obj = status(home, capsys)
        assert code == 0 and all(n["running"] for n in obj["nodes"])
    finally:
        cli.main(["down", "--home", str(home)])


def test_a_node_with_no_peer_up_and_no_quorum_says_why(tmp_path):
    from tests.netutil import running_network

    with running_network(tmp_path, validators=2, start=False) as net:
        net.start(0)
        net.wait_ready([0])
        alone = net.status(0)["p2p"]["alone"]
        assert "none of its 1 peers is connected" in alone and "ledger-node status" in alone
        net.start(1)
        net.wait_height(2)
        assert net.status(0)["p2p"]["alone"] is None
