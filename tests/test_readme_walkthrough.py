"""The README's walkthrough, run literally against real node processes.

The bash blocks between ``<!-- walkthrough:begin -->`` and
``<!-- walkthrough:end -->`` are executed in order in one shell, in a fresh
folder holding a ``.venv`` link and a devnet made by ``ledger-devnet up`` (what
``make devnet`` runs).  Between the last block (``ledger-devnet down``) and the
rest, the test checks what the README promises: verified sends, the balance
over REST, the killed node catching up to the same app hash, and a node that
lies to the wallet being refused.  Every process is stopped by its PID at the
end, whatever happened.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devnet import cli as devnet_cli
from devnet.cluster import load_network, node_status, pid_alive, read_pid, same_chain, stop_node
from node.types.commit import Commit, CommitSig
from node.types.transaction import COIN
from wallet import cli as wallet_cli
from wallet.keystore import load_keystore

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("<!-- walkthrough:begin -->", 1)[1].split("<!-- walkthrough:end -->", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def bash(script: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_NODE", "LEDGER_WALLET", "VIRTUAL_ENV")}
    env["HOME"] = str(cwd)
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{script}\n--- stdout\n{result.stdout}" \
                                   f"\n--- stderr\n{result.stderr}"
    return result


def run_cli(main, argv, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv, **kwargs)
    return code, out.getvalue()


def lying_proxy(url: str, how: str) -> httpx.MockTransport:
    """Forwards to the real node ``url``, then alters its answers."""
    real = httpx.Client(timeout=10)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = real.request(request.method, url + request.url.raw_path.decode(), content=request.content)
        body = answer.json()
        if how == "signature" and request.url.path.startswith("/v1/blocks/"):
            commit = Commit.decode(bytes.fromhex(body["commit"]["hex"]))
            first = commit.signatures[0]
            forged = Commit(commit.height, commit.round, commit.block_hash,
                            (CommitSig(first.validator, first.time_ms, bytes(31) + b"\x01" + first.signature[32:]),
                             *commit.signatures[1:]))
            body["commit"]["hex"] = forged.encode().hex()
        if how == "proof" and request.url.path.startswith("/v1/txs/"):
            body["proof"]["index"] = (body["proof"]["index"] + 1) % max(body["proof"]["total"], 2)
        if how == "header" and request.url.path.startswith("/v1/blocks/"):
            raw = bytearray.fromhex(body["header_hex"])
            raw[-40] ^= 1  # a bit of the header's app hash
            body["header_hex"] = raw.hex()
        return httpx.Response(answer.status_code, json=body)

    return httpx.MockTransport(handle)


def test_readme_walkthrough(tmp_path, capsys):
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the project's virtualenv (make test creates it)")
    assert "$(BIN)/ledger-devnet up" in (ROOT / "Makefile").read_text().split("devnet:", 1)[1].split("\n\n")[0]
    blocks = walkthrough_blocks()
    assert blocks[0].startswith("source .venv/bin/activate") and blocks[-1].strip() == "ledger-devnet down"
    work = tmp_path / "clone"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    home = work / ".devnet"
    try:
        # `make devnet`
        started = time.monotonic()
        up = bash("source .venv/bin/activate\nledger-devnet up", work, timeout=90)
        up_seconds = time.monotonic() - started
        assert "devnet up: 4 validators at height >= 1" in up.stdout
        with capsys.disabled():
            print(f"\n[walkthrough] ledger-devnet up: {up_seconds:.1f} s from nothing to height >= 1 "
                  f"(CLI reports {up.stdout.split('in ')[-1].split()[0]} s)")
        specs = load_network(home)
        assert len(specs) == 4

        # every block of the walkthrough but `down`, in one shell (the blocks share variables)
        started = time.monotonic()
        result = bash("\n".join(blocks[:-1]), work)
        with capsys.disabled():
            print(f"[walkthrough] README blocks: {time.monotonic() - started:.1f} s")
        out = result.stdout
        assert out.count("verified by") == 4  # three sends with --wait, one `tx`
        assert "killed (SIGKILL) validator-0" in out and "started validator-0" in out
        heights = [int(h) for h in re.findall(r"committed in block (\d+) \(", out)]
        assert len(heights) == 3
        # the set changed: validator-0 and validator-1 out, the two added nodes in; the leavers still follow
        members = {v["name"] for v in httpx.get(f"{specs[2].url}/v1/validators", timeout=15).json()["validators"]}
        assert members == {"validator-2", "validator-3", "full-0", "validator-1b"}
        assert "joined with power 10" in out and "left the validator set" in out
        heights = heights[:2] + [heights[-1]]

        me = load_keystore(home / "me.json").address
        for spec in specs:
            balance = httpx.get(f"{spec.url}/v1/addresses/{me}/balance", params={"min_height": heights[-1]},
                                timeout=15).json()
            assert balance["balance"] == 450_000_000 == int(4.5 * COIN)

        # the killed node came back and agrees with the others, block for block
        chain = same_chain(load_network(home), at_least=heights[-1], timeout_s=45)
        assert chain.ok, chain.describe()
        app_hash = chain.app_hash
        code, text = run_cli(devnet_cli.main, ["status", "--json", "--home", str(home)])
        nodes = json.loads(text)["nodes"]
        assert code == 0 and [n["name"] for n in nodes] == [s.name for s in load_network(home)]
        assert all(n["running"] and n["responding"] and n["height"] >= heights[-1] for n in nodes)

        # a node that lies to the wallet is refused, with the real answers altered in three ways
        txid = re.search(r"txid ([0-9a-f]{64})", out).group(1)
        wallet = str(home / "me.json")
        code, _ = run_cli(wallet_cli.main, ["--wallet", wallet, "--node", specs[2].url, "tx", txid])
        assert code == 0
        for how, error in (("signature", "bad-certificate"), ("proof", "bad-proof"), ("header", "forged-block")):
            code, text = run_cli(wallet_cli.main, ["--wallet", wallet, "--node", specs[2].url, "--json", "tx", txid],
                                 transport=lying_proxy(specs[2].url, how))
            assert code == wallet_cli.EXIT_UNVERIFIED and json.loads(text)["error"]["code"] == error, text

        # `up` on a running devnet changes nothing
        pids = [read_pid(s.home) for s in specs]
        code, text = run_cli(devnet_cli.main, ["up", "--home", str(home)])
        assert code == 0 and "already running" in text and [read_pid(s.home) for s in specs] == pids

        # pause and resume one node
        assert run_cli(devnet_cli.main, ["pause", "validator-3", "--home", str(home)])[0] == 0
        code, text = run_cli(devnet_cli.main, ["status", "--json", "--timeout", "0.5", "--home", str(home)])
        paused = json.loads(text)["nodes"][3]
        assert paused["running"] and paused["paused"] and not paused["responding"]
        assert run_cli(devnet_cli.main, ["resume", "validator-3", "--home", str(home)])[0] == 0
        # a clean stop (SIGTERM); `down` copes with a network that is partly down already
        code, text = run_cli(devnet_cli.main, ["stop", "validator-3", "--home", str(home)])
        assert code == 0 and "stopped (SIGTERM) validator-3" in text and not pid_alive(pids[3])

        # the last block: down (same shell session as the others, so the venv is active)
        bash("source .venv/bin/activate\n" + blocks[-1], work)
        assert not any(pid_alive(p) for p in pids + [read_pid(specs[0].home)])

        # `up` resumes the same chain; `up --fresh` starts a new one
        code, text = run_cli(devnet_cli.main, ["up", "--home", str(home)])
        assert code == 0 and "existing devnet" in text
        resumed = node_status(specs[0])
        assert resumed["height"] >= heights[-1] and resumed["genesis_hash"]
        code, text = run_cli(devnet_cli.main, ["up", "--fresh", "--home", str(home)])
        assert code == 0
        fresh = node_status(load_network(home)[0])
        assert fresh["genesis_hash"] != resumed["genesis_hash"] and fresh["app_hash"] != app_hash
        assert run_cli(devnet_cli.main, ["down", "--home", str(home)])[0] == 0
    finally:
        if (home / "network.json").exists():
            for spec in load_network(home):
                stop_node(spec)
