"""A store written in another format: `ledger-node start|show` and `ledger-devnet up` say what to do in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import plyvel

from devnet import cli as devnet_cli
from devnet.cluster import devnet_params, read_pid, write_network
from genesis.build import make_devnet_genesis
from node.config import DATA_DIR

ADVICE = "re-run `ledger-node init` on a fresh home, or for a devnet `ledger-devnet up --fresh`"
ROOT = Path(__file__).resolve().parents[1]


def old_format_devnet(tmp_path: Path) -> tuple[Path, list]:
    genesis, keys, _wallets = make_devnet_genesis(2, params=devnet_params())
    home = tmp_path / "net"
    specs = write_network(home, genesis, keys)
    for spec in specs:  # what a store written before format versions existed looks like
        db = plyvel.DB(str(spec.home / DATA_DIR))
        db.delete(b"Mformat_version")
        db.close()
    return home, specs


def test_devnet_up_refuses_an_old_store_before_starting_anything(tmp_path, capsys):
    home, specs = old_format_devnet(tmp_path)
    assert devnet_cli.main(["up", "--home", str(home)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "store-format" in err and ADVICE in err, err
    assert all(read_pid(spec.home) is None for spec in specs)


def test_node_start_and_show_print_one_line(tmp_path):
    _home, specs = old_format_devnet(tmp_path)
    for command in ("start", "show"):
        done = subprocess.run([sys.executable, "-m", "node.cli", command, "--home", str(specs[0].home)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "store-format" in done.stderr and ADVICE in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
