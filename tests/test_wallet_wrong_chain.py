"""Two devnets on one machine: a wallet never believes a node of the other one (issue 16, "Wrong chain, silently").

Everything runs through the real commands, in a scratch folder: ``ledger-devnet up`` makes ``.devnet`` (the
one a bare ``ledger-wallet`` used to fall back to) and a second devnet in ``two/``, 2 validators each, on free
ports.  A wallet of ``two/`` asked about a ``.devnet`` node must be refused with exit 4 and ``wrong-genesis``
(it used to print ``0 coins``), and without ``--node`` it must talk to the nodes of its own devnet, not to
``./.devnet``.  Both devnets are stopped by ``ledger-devnet down`` (and by PID) at the end, whatever happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devnet.cluster import load_network, stop_node
from genesis.document import genesis_hash, load_genesis

pytestmark = pytest.mark.processes

BIN = Path(sys.prefix) / "bin"


def run(cwd: Path, tool: str, *argv: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LEDGER_NODE", "LEDGER_WALLET", "VIRTUAL_ENV")}
    clean["HOME"] = str(cwd)
    clean.update(env or {})
    return subprocess.run([str(BIN / tool), *argv], cwd=cwd, env=clean, text=True, capture_output=True,
                          timeout=timeout)


def refused(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 4, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)["error"]


def test_a_wallet_refuses_a_node_of_another_devnet(tmp_path):
    if sys.prefix == sys.base_prefix or not (BIN / "ledger-wallet").exists():
        pytest.skip("needs the project's virtualenv (make test creates it)")
    one, two = tmp_path / ".devnet", tmp_path / "two"
    try:
        up = run(tmp_path, "ledger-devnet", "up", "--validators", "2", "--demo-wallets", "0", "--base-port", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        up = run(tmp_path, "ledger-devnet", "up", "--home", "two", "--validators", "2", "--demo-wallets", "0",
                 "--base-port", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        hint = "try: ledger-wallet --wallet two/wallets/faucet.json balance"
        assert hint in up.stdout

        # each devnet has its own chain id, so even the names differ
        g1, g2 = load_genesis(one / "genesis.json"), load_genesis(two / "genesis.json")
        assert g1.chain_id != g2.chain_id and g1.chain_id.startswith("devnet-") and g2.chain_id.startswith("devnet-")
        one_urls = [s.url for s in load_network(one)]
        two_urls = [s.url for s in load_network(two)]

        # the hint, run literally where `.devnet` runs: the wallet asks its own devnet, not ./.devnet
        result = run(tmp_path, "ledger-wallet", *hint.split()[2:])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1000000 coins" in result.stdout.replace(",", ""), result.stdout
        result = run(tmp_path, "ledger-wallet", "--wallet", "two/wallets/faucet.json", "--json", "balance")
        answer = json.loads(result.stdout)
        assert result.returncode == 0 and answer["node"] in two_urls
        assert answer["balance"]["base_units"] == g2.allocations[0].amount

        # a node of the other devnet is refused by every command, with its own code and exit 4
        wallet = ["--wallet", "two/wallets/faucet.json", "--node", one_urls[0], "--json"]
        for command in (["balance"], ["utxos"], ["history"], ["trust"], ["tx", "ab" * 32]):
            started = time.monotonic()
            error = refused(run(tmp_path, "ledger-wallet", *wallet, *command))
            assert error["code"] == "wrong-genesis", (command, error)
            assert genesis_hash(g2).hex() in error["message"] and one_urls[0] in error["message"]
            assert time.monotonic() - started < 8, f"{command} waited before refusing"
        me = run(tmp_path, "ledger-wallet", "--wallet", "two/wallets/faucet.json", "address").stdout.strip()
        error = refused(run(tmp_path, "ledger-wallet", *wallet, "send", me, "1", "--wait"))
        assert error["code"] == "wrong-genesis"
        # ... also when it comes from $LEDGER_NODE, or after a node of its own devnet that is down
        error = refused(run(tmp_path, "ledger-wallet", "--wallet", "two/wallets/faucet.json", "--json", "balance",
                            env={"LEDGER_NODE": one_urls[1]}))
        assert error["code"] == "wrong-genesis"
        dead = run(tmp_path, "ledger-devnet", "url", "0").stdout.strip().rsplit(":", 1)[0] + ":1"
        error = refused(run(tmp_path, "ledger-wallet", "--wallet", "two/wallets/faucet.json", "--json", "balance",
                            "--node", f"{dead},{one_urls[0]}"))
        assert error["code"] == "wrong-genesis"
        # the human message says what is wrong and what to do
        result = run(tmp_path, "ledger-wallet", "--wallet", "two/wallets/faucet.json", "--node", one_urls[0],
                     "balance")
        assert result.returncode == 4 and "0 coins" not in result.stdout
        assert g1.chain_id in result.stderr and g2.chain_id in result.stderr and "--node" in result.stderr
    finally:
        for home in (one, two):
            if (home / "network.json").exists():
                run(tmp_path, "ledger-devnet", "down", "--home", str(home), timeout=60)
                for spec in load_network(home):
                    stop_node(spec)
