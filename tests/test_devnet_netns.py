"""``ledger-devnet up --netns``: every node in its own network namespace, on its own address on a bridge.

The network test needs root, the ``ip`` command and the right to make network
namespaces (it is skipped, saying which is missing, otherwise).  It makes a
netns devnet in a scratch folder with ``ledger-devnet up --netns``, checks
each node answers at its ``10.213.N.k`` address with its three peers up, runs
the README walkthrough's blocks literally against it (as
``tests/test_readme_walkthrough.py`` does on loopback: sends verified with
``--wait``, a node killed and started again), then ``down`` and checks every
namespace, veth and bridge it made is gone.  Whatever happens, the nodes are
stopped by their PIDs and the namespaces removed.

The refusal without ``ip`` (or without root) is checked everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devnet import cli as devnet_cli
from devnet.cluster import load_network, netns, pid_alive, read_pid, stop_nodes
from tests.test_readme_walkthrough import bash, walkthrough_blocks

PEERS_TIMEOUT_S = 20.0


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if netns.ip_command() is None:
        return "needs the `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    probe = f"{netns.PREFIX}probe{os.getpid()}"
    try:
        made = subprocess.run([netns.ip_command() or "ip", "netns", "add", probe], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run `ip netns add`: {exc}"
    if made.returncode != 0:
        return f"network namespaces not permitted here: {made.stderr.strip()}"
    subprocess.run([netns.ip_command() or "ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


# --------------------------------------------------------------------------- the refusal


@pytest.mark.parametrize("missing", ["ip", "root"])
def test_up_netns_refuses_without_ip_or_root(tmp_path, monkeypatch, capsys, missing):
    if missing == "ip":
        monkeypatch.setattr(netns, "ip_command", lambda: None)
    else:
        monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    home = tmp_path / "dn"
    code = devnet_cli.main(["up", "--netns", "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "needs root and the `ip` command" in err
    assert not home.exists()  # nothing written before the refusal


def test_bench_netns_refuses_without_ip(monkeypatch, capsys):
    monkeypatch.setattr(netns, "ip_command", lambda: None)
    code = devnet_cli.main(["bench", "--netns", "--duration", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs root and the `ip` command" in err


def test_netns_nodes_only_from_our_record(tmp_path):
    """A non-loopback node is started only when ``netns.json`` beside its home records its address."""
    from devnet.cluster import DevnetError, NodeSpec, start_node

    spec = NodeSpec("validator-0", tmp_path / "validator-0", "10.213.7.2", 26657, 27657)
    spec.home.mkdir()
    with pytest.raises(DevnetError, match="not loopback"):
        start_node(spec)
    layout = netns.Layout("abc123", "10.213.7.0/24", "ldnabc123br", "10.213.7.1",
                          (netns.NodeNamespace("validator-0", "ldnabc123-validator-0", "ldnabc123h0", "ldnabc123n0",
                                               "10.213.7.9"),))
    netns.record(tmp_path, layout)
    assert netns.node_prefix(spec) is None  # recorded, but at another address
    with pytest.raises(DevnetError, match="not loopback"):
        start_node(spec)
    (tmp_path / netns.NETNS_FILE).write_text(json.dumps({**layout.to_json(), "bridge": "eth0"}))
    with pytest.raises(DevnetError, match="not made by ledger-devnet"):
        netns.load_layout(tmp_path)


def test_plan_names_and_addresses():
    if netns.ip_command() is None:
        pytest.skip("needs the `ip` command (iproute2) to look at the subnets in use")
    layout = netns.plan([f"validator-{i}" for i in range(12)])
    names = [layout.bridge] + [x for n in layout.nodes for x in (n.netns, n.host_veth, n.node_veth)]
    assert all(name.startswith(netns.PREFIX) for name in names) and len(set(names)) == len(names)
    assert all(len(name) <= 15 for name in [layout.bridge] + [x for n in layout.nodes
                                                              for x in (n.host_veth, n.node_veth)])
    net = layout.subnet.rsplit(".", 1)[0]
    assert layout.subnet.startswith("10.213.") and layout.bridge_address == f"{net}.1"
    assert [n.address for n in layout.nodes] == [f"{net}.{k + 2}" for k in range(12)]
    assert netns.Layout.from_json(layout.to_json()) == layout


# --------------------------------------------------------------------------- a netns devnet


@pytest.mark.processes
def test_up_netns_walkthrough_and_down(tmp_path, capsys):
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the project's virtualenv (make test creates it)")
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"--netns {reason}")
    work = tmp_path / "clone"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    home = work / ".devnet"
    blocks = walkthrough_blocks()
    assert blocks[-1].strip() == "ledger-devnet down"
    started = time.monotonic()
    try:
        up = bash("source .venv/bin/activate\nledger-devnet up --netns --validators 4 --home .devnet", work,
                  timeout=90)
        assert "devnet up: 4 validators at height >= 1" in up.stdout
        layout = netns.load_layout(home)
        assert layout is not None and len(layout.nodes) == 4
        specs = load_network(home)
        assert [s.host for s in specs] == [n.address for n in layout.nodes]
        assert all(s.host.startswith("10.213.") for s in specs)

        # each node answers at its own address, from its own namespace, with its three peers up
        for spec, entry in zip(specs, layout.nodes, strict=True):
            pid = read_pid(spec.home)
            assert pid_alive(pid)
            ns = subprocess.run([netns.ip_command() or "ip", "netns", "identify", str(pid)], capture_output=True,
                                text=True, timeout=10).stdout.strip()
            assert ns == entry.netns  # the pid in node.pid is the node itself, inside its namespace
        deadline = time.monotonic() + PEERS_TIMEOUT_S
        peers_up: dict[str, int] = {}
        while time.monotonic() < deadline:
            for spec in specs:
                try:
                    status = httpx.get(f"{spec.url}/v1/status", timeout=2).json()
                except httpx.HTTPError:
                    continue
                assert status["p2p"]["listen"] == f"{spec.host}:{spec.p2p_port}"
                peers_up[spec.name] = status["p2p"]["peers_up"]
            if len(peers_up) == 4 and all(v == 3 for v in peers_up.values()):
                break
            time.sleep(0.2)
        assert peers_up == {s.name: 3 for s in specs}

        # the README walkthrough, literally, but for `down`
        out = bash("\n".join(blocks[:-1]), work).stdout
        assert out.count("verified by") == 4  # three sends with --wait, one `tx`
        assert "killed (SIGKILL) validator-0" in out and "started validator-0" in out
        # the nodes the walkthrough added joined from namespaces of their own on the bridge
        layout = netns.load_layout(home)
        assert layout is not None and [n.name for n in layout.nodes][4:] == ["full-0", "validator-1b"]
        specs = load_network(home)
        assert [s.host for s in specs] == [n.address for n in layout.nodes]
        url = bash("source .venv/bin/activate\nledger-devnet url validator-1", work).stdout.strip()
        assert url == specs[1].url

        # down stops every node and removes exactly what up made
        pids = [read_pid(s.home) for s in specs]
        down = bash("source .venv/bin/activate\n" + blocks[-1], work).stdout
        assert not any(pid_alive(p) for p in pids)
        assert "removed the network namespaces" in down
        assert netns.leftovers(layout) == []

        # a later `up` recreates the namespaces and resumes the same chain there; `down` again
        again = bash("source .venv/bin/activate\nledger-devnet up", work, timeout=90)
        assert "existing devnet" in again.stdout and "devnet up: 4 validators" in again.stdout
        assert httpx.get(f"{specs[2].url}/v1/status", timeout=5).json()["height"] >= 1
        bash("source .venv/bin/activate\nledger-devnet down", work)
        assert netns.leftovers(layout) == []
        with capsys.disabled():
            print(f"\n[netns] up, walkthrough, down, up, down: {time.monotonic() - started:.1f} s")
    finally:
        if (home / "network.json").exists():
            stop_nodes(load_network(home))
        if (home / netns.NETNS_FILE).exists():
            netns.teardown(home)
        shutil.rmtree(work, ignore_errors=True)
