"""Reconfiguration on real processes: a full node joins, a validator quits, a key is rotated, while transfers go on;
the wallet then verifies, from its pinned genesis alone, a transaction committed after all of it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from devnet import cli as devnet_cli
from devnet.cluster import free_ports, load_network
from node.config import KEY_FILE
from node.crypto import address_of
from node.home import load_key_file
from node.types.reconfig import power_request, sign_approval, sign_join
from wallet.keystore import load_keystore


def wallet(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wallet.cli", "--wallet", str(home / "wallets" / "faucet.json"),
                           "--json", *args], capture_output=True, text=True, timeout=90)


def members(url: str) -> dict[str, int]:
    return {v["name"]: v["power"] for v in httpx.get(url + "/v1/validators", timeout=10).json()["validators"]}


def address(home: Path, name: str) -> str:
    return address_of(load_key_file(home / name / KEY_FILE).public_key)


class Transfers(threading.Thread):
    """Payments from the faucet to bob, one after another, until stopped; counts what committed."""

    def __init__(self, home: Path):
        super().__init__(daemon=True)
        self.home, self.bob = home, load_keystore(home / "wallets" / "bob.json").address
        self.stop, self.committed, self.failures = threading.Event(), [], []

    def run(self) -> None:
        for _ in range(200):
            if self.stop.is_set():
                return
            sent = wallet(self.home, "send", self.bob, "0.001", "--wait")
            if sent.returncode == 0:
                self.committed.append(json.loads(sent.stdout)["txid"])
            else:
                self.failures.append(sent.stdout + sent.stderr)


def test_join_quit_and_rotation_while_transfers_go_on(tmp_path, capsys):
    home = tmp_path / "net"
    base = free_ports(1)[0]
    transfers: Transfers | None = None
    try:
        assert devnet_cli.main(["up", "--home", str(home), "--validators", "4", "--base-port", str(base)]) == 0
        url = load_network(home)[1].url
        transfers = Transfers(home)
        transfers.start()
        assert devnet_cli.main(["add-node", "--home", str(home)]) == 0
        capsys.readouterr()
        assert devnet_cli.main(["join", "--home", str(home), "full-0", "--json"]) == 0
        joined = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert joined["first_signed"] >= joined["joined_at"]
        assert set(members(url)) == {"validator-0", "validator-1", "validator-2", "validator-3", "full-0"}
        full0 = next(s for s in load_network(home) if s.name == "full-0").url  # the certificate it stored
        block = httpx.get(full0 + f"/v1/blocks/{joined['first_signed']}", timeout=10).json()
        assert address(home, "full-0") in {s["validator"] for s in block["commit"]["signatures"]}
        assert len(httpx.get(url + f"/v1/validators?height={joined['joined_at'] - 1}").json()["validators"]) == 4

        assert devnet_cli.main(["quit", "--home", str(home), "validator-0", "--json"]) == 0
        left = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert "validator-0" not in members(url) and len(members(url)) == 4
        v0 = load_network(home)[0].url
        following = httpx.get(v0 + "/v1/status", timeout=10).json()
        assert following["is_validator"] is False
        deadline = time.monotonic() + 30
        while httpx.get(v0 + "/v1/status", timeout=10).json()["height"] < left["left_at"] + 3:
            assert time.monotonic() < deadline, "validator-0 stopped following after it quit"
            time.sleep(0.2)

        # A key rotation: a new key joins, then the old one leaves.
        assert devnet_cli.main(["add-node", "--home", str(home), "--name", "full-1"]) == 0
        assert devnet_cli.main(["join", "--home", str(home), "full-1"]) == 0
        assert devnet_cli.main(["quit", "--home", str(home), "full-0"]) == 0
        assert set(members(url)) == {"validator-1", "validator-2", "validator-3", "full-1"}
        changes = httpx.get(url + "/v1/validators/changes", timeout=10).json()["changes"]
        assert len(changes) == 5  # genesis, join, quit, join, quit

        transfers.stop.set()
        transfers.join(120)
        assert transfers.committed and not transfers.failures, transfers.failures[:3]
        # A payment after every change, verified from the pinned genesis: the wallet walks the set changes.
        sent = wallet(home, "send", transfers.bob, "1", "--wait")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        txid = json.loads(sent.stdout)["txid"]
        chain_file = home / "wallets" / "faucet.chain.json"
        cached = json.loads(chain_file.read_text())
        cached["validator_sets"] = []  # forget what the wallet proved: walk again from genesis
        chain_file.write_text(json.dumps(cached))
        shown = wallet(home, "tx", txid)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert json.loads(shown.stdout)["verified"] is True
        assert [s["height"] for s in json.loads(chain_file.read_text())["validator_sets"]] == \
            [c["height"] for c in changes[1:]]
    finally:
        if transfers is not None:
            transfers.stop.set()
        devnet_cli.main(["down", "--home", str(home)])


def test_reconfiguration_inputs_are_checked_at_the_door(tmp_path, capsys):
    home = tmp_path / "net"
    base = free_ports(1)[0]
    try:
        assert devnet_cli.main(["up", "--home", str(home), "--validators", "4", "--base-port", str(base)]) == 0
        url = load_network(home)[0].url
        status = httpx.get(url + "/v1/status", timeout=10).json()
        chain, height = status["chain_id"], status["height"]

        def submit(item_hex: str) -> httpx.Response:
            return httpx.post(url + "/v1/validators/inputs", json={"input": item_hex}, timeout=10)

        def key(name: str) -> bytes:
            return load_key_file(home / name / KEY_FILE).private_key

        assert submit("zz").json()["error"]["code"] == "reconfig-malformed"
        assert submit("41" + "00" * 10).status_code == 400
        outsider = bytes(range(1, 33))
        join = sign_join(chain, outsider, 10, "outsider", height + 100)
        not_member = submit(sign_approval(chain, outsider, join).encoded.hex())
        assert not_member.status_code == 422 and not_member.json()["error"]["code"] == "reconfig-not-validator"
        too_big = submit(sign_approval(chain, key("validator-1"), sign_join(chain, outsider, 14, "x", height + 100))
                         .encoded.hex())
        assert too_big.json()["error"]["code"] == "reconfig-too-much-change"
        zero = submit(sign_approval(chain, key("validator-1"), power_request(
            load_key_file(home / "validator-2" / KEY_FILE).public_key, 10, height + 100)).encoded.hex())
        assert zero.json()["error"]["code"] == "reconfig-bad-power"
        first = submit(sign_approval(chain, key("validator-1"), join).encoded.hex())
        assert first.status_code == 202, first.text
        deadline = time.monotonic() + 30
        while not httpx.get(url + "/v1/validators/pending", timeout=10).json()["pending"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        twice = submit(sign_approval(chain, key("validator-1"), join).encoded.hex())
        assert twice.json()["error"]["code"] == "reconfig-duplicate-approval"
        pending = httpx.get(url + "/v1/validators/pending", timeout=10).json()["pending"]
        assert pending[0]["approved_power"] == 10 and pending[0]["name"] == "outsider"
        assert len(members(url)) == 4  # nothing changed without a quorum
    finally:
        devnet_cli.main(["down", "--home", str(home)])
