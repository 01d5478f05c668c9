"""``ledger-devnet up --fresh``: the same ports again (connections of the stopped nodes in TIME_WAIT do not
count as taken), and wallet files the devnet did not write are never deleted without being named."""

from __future__ import annotations

import json

import httpx

from devnet import cli
from devnet.cluster import free_ports, load_network


def test_fresh_keeps_the_ports_and_the_wallets_it_did_not_write(tmp_path, capsys):
    home = tmp_path / "net"
    base = free_ports(1)[0]
    try:  # `down` in the end, whatever fails (the first `up` included: it starts nodes before it can fail)
        assert cli.main(["up", "--home", str(home), "--validators", "2", "--base-port", str(base)]) == 0
        before = [(s.port, s.p2p_port) for s in load_network(home)]
        assert [p for p, _ in before] == [base, base + 1]
        chain_before = json.loads((home / "network.json").read_text())["chain_id"]
        mine = home / "wallets" / "mine.json"
        mine.write_text("{}")  # a user's own file in the devnet's wallets folder
        capsys.readouterr()
        assert cli.main(["up", "--fresh", "--home", str(home)]) == 2
        err = capsys.readouterr().err
        assert str(mine) in err and "--delete-wallets" in err
        assert mine.exists() and json.loads((home / "network.json").read_text())["chain_id"] == chain_before
        mine.unlink()
        # Clients hold keep-alive connections to the REST ports; stopping the nodes closes them from the node's
        # side, which leaves them in TIME_WAIT on the nodes' own ports while the devnet is made again.
        client = httpx.Client(timeout=5)
        for spec in load_network(home):
            assert client.get(spec.url + "/v1/status").status_code == 200
        assert cli.main(["up", "--fresh", "--home", str(home), "--validators", "2", "--base-port", str(base)]) == 0
        client.close()
        after = [(s.port, s.p2p_port) for s in load_network(home)]
        assert after == before, capsys.readouterr().err
        assert json.loads((home / "network.json").read_text())["chain_id"] != chain_before
        (home / "wallets" / "mine.json").write_text("{}")
        assert cli.main(["up", "--fresh", "--delete-wallets", "--home", str(home), "--validators", "2",
                         "--base-port", str(base)]) == 0
        assert not (home / "wallets" / "mine.json").exists()
    finally:
        cli.main(["down", "--home", str(home)])
