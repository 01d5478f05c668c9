"""Bad arguments to every command answer with an error and a non-zero exit status, never a traceback.

Each case runs the real console script as a subprocess in a scratch folder (also its ``HOME``), with
a short timeout.  Nothing here starts a node: the ``start``/``up`` cases all fail before anything
is launched (bad usage, missing homes, zero validators).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
DEAD_NODE = "http://127.0.0.1:9"  # loopback discard port: connection refused at once
"""A node URL nothing answers on."""


def _command(tool: str) -> list[str]:
    if tool == "genesis":
        return [sys.executable, "-m", "genesis"]
    script = BIN / tool
    return [str(script)] if script.exists() else [sys.executable, "-m", {
        "ledger-node": "node.cli", "ledger-wallet": "wallet.cli", "ledger-devnet": "devnet.cli"}[tool]]


def _env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["HOME"] = str(scratch)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def _run(scratch: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_command(tool), *args], cwd=scratch, env=_env(scratch), capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder with an empty folder, a non-JSON file, a genesis, an initialized node home and a wallet."""
    root = tmp_path_factory.mktemp("bad-args")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not json\n")
    done = _run(root, "genesis", "new", "--validators", "1", "--out", "net/genesis.json", "--seed", "01")
    assert done.returncode == 0, done.stderr
    done = _run(root, "ledger-node", "init", "--home", "home", "--genesis", "net/genesis.json",
                "--key", "net/keys/validator-0.json", "--host", "127.0.0.1", "--port", "1")
    assert done.returncode == 0, done.stderr
    done = _run(root, "ledger-wallet", "new", "--no-passphrase", "--wallet", "w.json")
    assert done.returncode == 0, done.stderr
    return root


W = ("--wallet", "w.json", "--node", DEAD_NODE, "--timeout", "1")
"""A valid wallet and a node that is not there."""

CASES: list[tuple[str, ...]] = [
    # ledger-node
    ("ledger-node",),
    ("ledger-node", "bogus"),
    ("ledger-node", "init"),
    ("ledger-node", "init", "--home", "h1"),
    ("ledger-node", "init", "--home", "h2", "--genesis", "missing.json"),
    ("ledger-node", "init", "--home", "h3", "--genesis", "empty"),
    ("ledger-node", "init", "--home", "h4", "--genesis", "notes.txt"),
    ("ledger-node", "init", "--home", "h5", "--genesis", "net/genesis.json", "--key", "missing.json"),
    ("ledger-node", "init", "--home", "h6", "--genesis", "net/genesis.json", "--port", "x"),
    ("ledger-node", "init", "--home", "h7", "--genesis", "net/genesis.json", "--set", "nokey"),
    ("ledger-node", "start"),
    ("ledger-node", "start", "--home", "missing"),
    ("ledger-node", "start", "--home", "empty"),
    ("ledger-node", "start", "--home", "home", "--port", "-1"),
    ("ledger-node", "show"),
    ("ledger-node", "status"),
    ("ledger-node", "status", "--home", "missing"),
    ("ledger-node", "status", "--home", "empty"),
    ("ledger-node", "status", "--node", DEAD_NODE, "--timeout", "1"),
    ("ledger-node", "status", "--node", "not a url at all", "--timeout", "1"),
    ("ledger-node", "id", "--home", "empty"),
    ("ledger-wallet", "import", "missing-key.json", "--wallet", "imported.json", "--no-passphrase"),
    ("ledger-wallet", "import", "notes.txt", "--wallet", "imported2.json", "--no-passphrase"),
    ("ledger-wallet", "export", "--wallet", "w.json"),
    ("ledger-wallet", "export", "--wallet", "missing.json", "--reveal-private-key"),
    ("ledger-node", "show", "--home", "missing"),
    ("ledger-node", "show", "--home", "empty"),
    ("ledger-node", "show", "--home", "notes.txt"),
    ("ledger-node", "show", "block", "--home", "home", "--height", "-1"),
    ("ledger-node", "show", "block", "--home", "home", "--height", "x"),
    ("ledger-node", "show", "nothing", "--home", "home"),
    ("ledger-node", "simulate", "--no-such-option"),
    # ledger-wallet
    ("ledger-wallet",),
    ("ledger-wallet", "--timeout", "-1", "balance"),
    ("ledger-wallet", "balance", "--timeout", "0"),
    ("ledger-wallet", "balance", "--timeout", "x"),
    ("ledger-wallet", "new", "--wallet", "w.json", "--no-passphrase"),
    ("ledger-wallet", "new", "--wallet", "w2.json", "--no-passphrase", "--genesis", "missing.json"),
    ("ledger-wallet", "new", "--wallet", "empty", "--no-passphrase"),
    ("ledger-wallet", "address", "--wallet", "missing.json"),
    ("ledger-wallet", "address", "--wallet", "empty"),
    ("ledger-wallet", "address", "--wallet", "notes.txt"),
    ("ledger-wallet", "balance", "not-an-address", *W),
    ("ledger-wallet", "balance", *W),
    ("ledger-wallet", "utxos", *W),
    ("ledger-wallet", "send", *W),
    ("ledger-wallet", "send", "not-an-address", "1", *W),
    ("ledger-wallet", "send", "lg13cknvk0ez2jlrtgxd7ftr84gw0kwvt0ew4ttta", "-1", *W),
    ("ledger-wallet", "send", "lg13cknvk0ez2jlrtgxd7ftr84gw0kwvt0ew4ttta", "x", *W),
    ("ledger-wallet", "send", "lg13cknvk0ez2jlrtgxd7ftr84gw0kwvt0ew4ttta", "1", "--fee-rate", "x", *W),
    ("ledger-wallet", "tx", *W),
    ("ledger-wallet", "tx", "zz", *W),
    ("ledger-wallet", "history", "--limit", "x", *W),
    ("ledger-wallet", "trust", "--reset", *W),
    # ledger-devnet
    ("ledger-devnet",),
    ("ledger-devnet", "up", "--validators", "0", "--home", "dn"),
    ("ledger-devnet", "up", "--validators", "-2", "--home", "dn"),
    ("ledger-devnet", "up", "--validators", "x", "--home", "dn"),
    ("ledger-devnet", "up", "--home", "dn", "--timeout", "-1"),
    ("ledger-devnet", "up", "--home", "dn", "--base-port", "-5"),
    ("ledger-devnet", "up", "--home", "dn", "--demo-wallets", "-1"),
    ("ledger-devnet", "up", "--home", "notes.txt"),
    ("ledger-devnet", "up", "--fresh", "--home", "notes.txt"),
    ("ledger-devnet", "up", "--home", "home"),
    ("ledger-devnet", "down", "--home", "missing"),
    ("ledger-devnet", "status", "--home", "missing"),
    ("ledger-devnet", "status", "--home", "empty"),
    ("ledger-devnet", "status", "--home", "missing", "--timeout", "-1"),
    ("ledger-devnet", "logs"),
    ("ledger-devnet", "logs", "validator-0", "--home", "missing"),
    ("ledger-devnet", "logs", "validator-0", "--home", "empty", "-n", "-1"),
    ("ledger-devnet", "url", "9", "--home", "missing"),
    ("ledger-devnet", "kill", "0", "--home", "missing"),
    ("ledger-devnet", "stop", "0", "--home", "empty"),
    ("ledger-devnet", "pause", "0", "--home", "missing"),
    ("ledger-devnet", "resume", "0", "--home", "missing"),
    ("ledger-devnet", "start", "0", "--home", "missing"),
    ("ledger-devnet", "start", "0", "--home", "empty", "--timeout", "x"),
    ("ledger-devnet", "init", "--hosts", "127.0.0.1", "--out", "o1"),
    ("ledger-devnet", "init", "--validators", "0", "--hosts", "127.0.0.1", "--out", "o2"),
    ("ledger-devnet", "init", "--validators", "1", "--hosts", ",", "--out", "o3"),
    ("ledger-devnet", "init", "--validators", "1", "--hosts", "127.0.0.1", "--out", "home"),
    ("ledger-devnet", "init", "--validators", "1", "--hosts", "127.0.0.1", "--out", "notes.txt"),
    ("ledger-devnet", "init", "--validators", "1", "--hosts", "127.0.0.1", "--out", "o4", "--chain-id", ""),
    ("ledger-devnet", "bench", "--no-such-option"),
    ("ledger-devnet", "drill", "--no-such-option"),
    # python -m genesis
    ("genesis",),
    ("genesis", "new"),
    ("genesis", "new", "--validators", "0", "--out", "g1/genesis.json"),
    ("genesis", "new", "--validators", "-1", "--out", "g2/genesis.json"),
    ("genesis", "new", "--validators", "x", "--out", "g3/genesis.json"),
    ("genesis", "new", "--validators", "1", "--out", "g4/genesis.json", "--seed", "not-hex"),
    ("genesis", "new", "--validators", "1", "--out", "g5/genesis.json", "--faucet-amount", "-5"),
    ("genesis", "new", "--validators", "1", "--out", "net/genesis.json"),
    ("genesis", "check"),
    ("genesis", "check", "missing.json"),
    ("genesis", "check", "empty"),
    ("genesis", "check", "notes.txt"),
]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) for c in CASES])
def test_bad_arguments_fail_cleanly(scratch: Path, case: tuple[str, ...]) -> None:
    done = _run(scratch, *case)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode not in (0, None), output
    assert done.returncode > 0, f"killed by signal {-done.returncode}: {output}"  # a crash, not an answer
    assert done.stderr.strip() or done.stdout.strip(), "no message at all"
    assert not (scratch / ".devnet").exists(), "a case wrote the default devnet folder"


@pytest.mark.parametrize("command", ["ledger-node", "ledger-wallet", "ledger-devnet"])
def test_version(scratch: Path, command: str) -> None:
    from importlib.metadata import version

    done = _run(scratch, command, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"{command} {version('ledger-node')}", done


@pytest.mark.parametrize("args", [("--json", "send"), ("send", "--json", "--no-such-option"), ("--json", "bogus")])
def test_wallet_usage_errors_are_json_under_json(scratch: Path, args: tuple[str, ...]) -> None:
    import json

    done = _run(scratch, "ledger-wallet", *args)
    assert done.returncode == 2, done
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "bad-usage" and error["message"]


@pytest.mark.parametrize("command", ["balance", "utxos"])
def test_verified_read_refuses_too_many_nodes(scratch: Path, command: str) -> None:
    """More than ``MAX_NODES`` distinct ``--node`` URLs: refused as bad usage before any node is asked."""
    import json

    from wallet.quorum import MAX_NODES

    # distinct loopback hosts on the discard port: were any asked, the answer would be unreachable (3), not usage (2)
    nodes = [arg for i in range(MAX_NODES + 1) for arg in ("--node", f"http://127.0.0.{i + 1}:9")]
    done = _run(scratch, "ledger-wallet", "--json", command, "--wallet", "w.json", "--timeout", "1", *nodes)
    assert done.returncode == 2, done
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "too-many-nodes", error
    assert f"{MAX_NODES + 1} nodes given" in error["message"] and f"at most {MAX_NODES}" in error["message"], error
