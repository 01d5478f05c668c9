"""ledger-devnet without running nodes: init for several machines, status shape, logs, plugins, guards."""

from __future__ import annotations

import json
import sys
import tomllib
import types

import pytest

from devnet import cli
from devnet.cluster import NETWORK_FILE, HeightWait, devnet_params, load_network, write_network
from genesis.build import make_devnet_genesis
from genesis.document import load_genesis
from node.p2p.secret import node_id_of
from wallet.keystore import load_keystore

STATUS_KEYS = {"name", "url", "pid", "running", "paused", "responding", "height", "app_hash", "latest_block_hash",
               "catching_up", "peers_up", "peers"}


@pytest.fixture
def stopped_devnet(tmp_path):
    genesis, keys, wallets = make_devnet_genesis(2, params=devnet_params())
    home = tmp_path / "net"
    write_network(home, genesis, keys)
    cli.write_wallets(home, wallets, genesis)
    return home


def test_init_writes_one_home_per_host(tmp_path, capsys):
    out = tmp_path / "multi"
    hosts = ["10.0.0.1", "10.0.0.2", "node-c.example"]
    assert cli.main(["init", "--validators", "4", "--hosts", ",".join(hosts), "--out", str(out),
                     "--base-port", "27000"]) == 0
    info = json.loads((out / NETWORK_FILE).read_text())
    assert info["multi_host"] is True
    nodes = info["nodes"]
    expected = [("10.0.0.1", 27000), ("10.0.0.2", 27000), ("node-c.example", 27000), ("10.0.0.1", 27001)]
    assert [(n["host"], n["port"]) for n in nodes] == expected
    assert [n["p2p_port"] for n in nodes] == [28000, 28000, 28000, 28001]
    genesis = load_genesis(out / "genesis.json")
    ids = {v.name: node_id_of(v.public_key) for v in genesis.validators}
    addresses = {n["name"]: f"{ids[n['name']]}@{n['host']}:{n['p2p_port']}" for n in nodes}
    for n in nodes:
        home = out / n["name"]
        config = tomllib.loads((home / "config.toml").read_text())
        assert config["host"] == n["host"] and config["port"] == n["port"] and config["p2p_port"] == n["p2p_port"]
        assert sorted(config["peers"]) == sorted(a for name, a in addresses.items() if name != n["name"])
        assert config["log_file"] == ""  # no path of this machine in a home meant for another
        assert load_genesis(home / "genesis.json") == genesis
        assert (home / "validator_key.json").exists()
    assert [v.name for v in genesis.validators] == [n["name"] for n in nodes]
    assert load_keystore(out / "wallets" / "faucet.json").trusted_genesis["chain_id"] == genesis.chain_id
    capsys.readouterr()
    # nothing here ever starts a node bound to a non-loopback address
    assert cli.main(["up", "--home", str(out)]) == 2
    assert "several machines" in capsys.readouterr().err
    assert cli.main(["start", "validator-0", "--home", str(out)]) == 1
    assert "not loopback" in capsys.readouterr().err
    assert not any((out / n["name"] / "node.pid").exists() for n in nodes)


def test_init_refuses_a_used_folder(tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert cli.main(["init", "--validators", "1", "--hosts", "127.0.0.1", "--out", str(tmp_path / "used")]) == 2
    assert (tmp_path / "used" / "notes.txt").exists()


def test_status_json_shape_when_stopped(stopped_devnet, capsys):
    assert cli.main(["status", "--json", "--home", str(stopped_devnet)]) == 1  # no quorum: exit 1
    obj = json.loads(capsys.readouterr().out)
    assert list(obj) == ["nodes", "power_up", "power_total", "quorum"]
    assert obj["power_up"] == 0 and obj["power_total"] > 0 and obj["quorum"] is False
    assert [n["name"] for n in obj["nodes"]] == ["validator-0", "validator-1"]
    for node, spec in zip(obj["nodes"], load_network(stopped_devnet), strict=True):
        assert set(node) == STATUS_KEYS
        assert node["url"] == spec.url
        assert node["running"] is False and node["height"] is None and node["app_hash"] is None
    assert cli.main(["status", "--home", str(stopped_devnet)]) == 1
    out = capsys.readouterr().out
    assert "stopped" in out and "quorum: NO" in out and "catching up" in out


def test_url_logs_and_node_lookup(stopped_devnet, capsys):
    specs = load_network(stopped_devnet)
    assert cli.main(["url", "1", "--home", str(stopped_devnet)]) == 0
    assert capsys.readouterr().out.strip() == specs[1].url
    (specs[0].home / "node.log").write_text("one\ntwo\nthree\n")
    assert cli.main(["logs", "validator-0", "-n", "2", "--home", str(stopped_devnet)]) == 0
    assert capsys.readouterr().out == "two\nthree\n"
    assert cli.main(["logs", "validator-9", "--home", str(stopped_devnet)]) == 1
    assert "no node 'validator-9'" in capsys.readouterr().err
    for verb in ("kill", "stop", "pause", "resume"):  # idempotent: a stopped node stays stopped, exit 0
        assert cli.main([verb, "validator-1", "--home", str(stopped_devnet)]) == 0
        assert "not running; nothing to do" in capsys.readouterr().out
    assert cli.main(["--home", str(stopped_devnet), "url", "0"]) == 0  # --home before the command too
    assert capsys.readouterr().out.strip() == specs[0].url
    assert cli.main(["start", "--home", str(stopped_devnet)]) == 2  # a node, or --all
    assert "--all" in capsys.readouterr().err
    assert cli.main(["status", "--home", str(tmp_missing := stopped_devnet / "nope")]) == 1
    assert "ledger-devnet up" in capsys.readouterr().err and not tmp_missing.exists()


def test_devnet_wallets_trust_the_devnet_genesis(stopped_devnet):
    from genesis.document import genesis_hash

    genesis = load_genesis(stopped_devnet / "genesis.json")
    store = load_keystore(stopped_devnet / "wallets" / "faucet.json")
    assert not store.encrypted
    assert store.trusted_genesis == {"chain_id": "devnet", "genesis_hash": genesis_hash(genesis).hex()}
    assert (stopped_devnet / "wallets" / "faucet.chain.json").exists()


def test_up_names_each_devnet_apart(monkeypatch, tmp_path):
    """`up` gives each new devnet a chain id of its own unless --chain-id says otherwise."""
    import re

    assert cli.build_parser().parse_args(["up"]).chain_id is None
    assert cli.build_parser().parse_args(["up", "--chain-id", "mine"]).chain_id == "mine"
    ids = {cli.new_devnet_chain_id() for _ in range(20)}
    assert len(ids) == 20 and all(re.fullmatch(r"devnet-[0-9a-f]{8}", i) for i in ids)
    seen = []
    monkeypatch.setattr(cli, "write_network", lambda home, genesis, *a, **k: seen.append(genesis.chain_id) or [])
    monkeypatch.setattr(cli, "write_wallets", lambda *a, **k: None)
    monkeypatch.setattr(cli, "wait_for_height", lambda *a, **k: HeightWait(False, 1, problem="stopped here"))
    for extra in ([], ["--chain-id", "mine"]):
        assert cli.main(["up", "--home", str(tmp_path / f"n{len(seen)}"), "--validators", "1", *extra]) == 1
    assert seen[0].startswith("devnet-") and seen[1] == "mine"


def test_up_refuses_a_folder_that_is_not_a_devnet(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for extra in ([], ["--fresh"]):
        assert cli.main(["up", "--home", str(tmp_path / "mine"), *extra]) == 2
        assert "not a devnet" in capsys.readouterr().err
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_missing_plugin_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.PLUGINS, "bench", ("devnet._no_such_bench", "add", "run", "help"))
    assert cli.main(["bench", "--duration", "5"]) == 2
    assert "`ledger-devnet bench` is not available" in capsys.readouterr().err


def test_plugin_gets_its_own_arguments(monkeypatch):
    seen = {}
    module = types.ModuleType("devnet._fake_drill")
    module.add_drill_arguments = lambda parser: parser.add_argument("--rounds", type=int, default=1)
    module.run_drill = lambda args: seen.setdefault("rounds", args.rounds) and 7
    monkeypatch.setitem(sys.modules, "devnet._fake_drill", module)
    monkeypatch.setitem(cli.PLUGINS, "drill", ("devnet._fake_drill", "add_drill_arguments", "run_drill", "help"))
    assert cli.main(["drill", "--rounds", "3"]) == 7
    assert seen == {"rounds": 3}


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("up", "down", "status", "logs", "kill", "stop", "start", "pause", "resume", "init", "url",
                    "bench", "drill"):
        assert command in text


def test_logs_follow_until_ctrl_c(stopped_devnet, capsys, monkeypatch):
    log = load_network(stopped_devnet)[0].home / "node.log"
    log.write_text("old\n")
    naps = []

    def nap(_seconds):  # the first pause in following: a line arrives; the second: Ctrl-C
        naps.append(1)
        if len(naps) == 1:
            with open(log, "a") as handle:
                handle.write("new\n")
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", nap)
    assert cli.main(["logs", "validator-0", "-f", "--home", str(stopped_devnet)]) == 0
    assert capsys.readouterr().out == "old\nnew\n"


def test_stale_pid_file_never_names_an_unrelated_process(stopped_devnet, capsys):
    import os

    from devnet.cluster import pid_alive, read_pid

    spec = load_network(stopped_devnet)[0]
    (spec.home / "node.pid").write_text(str(os.getpid()))  # this test process: alive, but not that node
    assert read_pid(spec.home) is None
    assert cli.main(["kill", spec.name, "--home", str(stopped_devnet)]) == 0
    assert "not running" in capsys.readouterr().out
    assert cli.main(["down", "--home", str(stopped_devnet)]) == 0
    assert pid_alive(os.getpid())
