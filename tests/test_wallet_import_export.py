"""``ledger-wallet import`` / ``export`` (issue 16, "The manual path"): the key files ``genesis new`` writes become
wallet files with the keystore's encryption, and a key leaves a wallet only when asked for in so many words.

The console scripts run as subprocesses in a scratch folder (also their ``HOME``); no node is needed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wallet.keystore import load_keystore

BIN = Path(sys.executable).parent


def run(cwd: Path, tool: str, *argv: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "genesis"] if tool == "genesis" else (
        [str(BIN / tool)] if (BIN / tool).exists() else [sys.executable, "-m", "wallet.cli"])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    clean.update(HOME=str(cwd), PYTHONPATH=str(Path(__file__).resolve().parent.parent), **(env or {}))
    return subprocess.run([*command, *argv], cwd=cwd, env=clean, input=stdin, text=True, capture_output=True,
                          timeout=60)


@pytest.fixture
def keys(tmp_path) -> Path:
    done = run(tmp_path, "genesis", "new", "--validators", "1", "--out", "net/genesis.json", "--seed", "01",
               "--chain-id", "import-test")
    assert done.returncode == 0, done.stderr
    return tmp_path / "net" / "keys" / "validator-0.json"


def test_import_a_genesis_key_file_encrypted_and_export_it_back(tmp_path, keys):
    key_file = json.loads(keys.read_text())
    secret = {"PW": "correct horse"}
    done = run(tmp_path, "ledger-wallet", "import", str(keys), "--wallet", "v.json", "--passphrase-env", "PW",
               "--genesis", "net/genesis.json", "--json", env=secret)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["address"] == key_file["address"] and made["encrypted"] is True
    assert made["trusted_genesis"]["chain_id"] == "import-test"
    wallet = tmp_path / "v.json"
    assert stat.S_IMODE(os.stat(wallet).st_mode) == 0o600
    assert key_file["private_key"] not in wallet.read_text()  # sealed, as `new` seals it
    assert load_keystore(wallet).unlock("correct horse").hex() == key_file["private_key"]

    # export refuses without the explicit flag, and says which flag
    done = run(tmp_path, "ledger-wallet", "export", "--wallet", "v.json", "--passphrase-env", "PW", env=secret)
    assert done.returncode == 2 and "--reveal-private-key" in done.stderr and key_file["private_key"] not in done.stdout
    done = run(tmp_path, "ledger-wallet", "export", "--wallet", "v.json", "--json", env=secret)
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["code"] == "export-not-confirmed"
    # with it: the key on stdout (only the key), the warning on stderr
    done = run(tmp_path, "ledger-wallet", "export", "--reveal-private-key", "--wallet", "v.json",
               "--passphrase-env", "PW", env=secret)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == key_file["private_key"]
    assert "WARNING" in done.stderr and "spend" in done.stderr
    done = run(tmp_path, "ledger-wallet", "export", "--reveal-private-key", "--wallet", "v.json", "--json",
               "--passphrase-env", "PW", env=secret)
    exported = json.loads(done.stdout)
    assert exported["private_key"] == key_file["private_key"] and exported["address"] == key_file["address"]
    assert "WARNING" in done.stderr
    # a wrong passphrase is refused as everywhere else
    done = run(tmp_path, "ledger-wallet", "export", "--reveal-private-key", "--wallet", "v.json",
               "--passphrase-env", "PW", env={"PW": "wrong"})
    assert done.returncode == 2 and "wrong passphrase" in done.stderr and not done.stdout.strip()


def test_import_hex_from_stdin_without_passphrase(tmp_path, keys):
    key_file = json.loads(keys.read_text())
    done = run(tmp_path, "ledger-wallet", "import", "--wallet", "d.json", "--no-passphrase",
               stdin="0x" + key_file["private_key"].upper() + "\n")
    assert done.returncode == 0, done.stderr
    assert f"address {key_file['address']}" in done.stdout and "NOT encrypted" in done.stdout
    done = run(tmp_path, "ledger-wallet", "address", "--wallet", "d.json")
    assert done.stdout.strip() == key_file["address"]
    # an unencrypted wallet file is a key file too
    done = run(tmp_path, "ledger-wallet", "import", "d.json", "--wallet", "copy.json", "--no-passphrase", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["address"] == key_file["address"]


@pytest.mark.parametrize("content, code", [
    ("not hex at all", "bad-private-key"),
    ("00" * 32, "bad-private-key"),  # zero is no key
    ("ab" * 31, "bad-private-key"),
    ('{"name": "x"}', "bad-key-file"),
    ("{not json", "bad-key-file"),
])
def test_import_refuses_what_is_not_a_key(tmp_path, content, code):
    (tmp_path / "key.txt").write_text(content)
    done = run(tmp_path, "ledger-wallet", "import", "key.txt", "--wallet", "w.json", "--no-passphrase", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["code"] == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "w.json").exists()


def test_import_refuses_a_mismatched_key_file_a_missing_one_and_overwriting(tmp_path, keys):
    key_file = json.loads(keys.read_text())
    other = run(tmp_path, "ledger-wallet", "new", "--wallet", "other.json", "--no-passphrase", "--json")
    tampered = dict(key_file, address=json.loads(other.stdout)["address"])
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    done = run(tmp_path, "ledger-wallet", "import", "tampered.json", "--wallet", "t.json", "--no-passphrase")
    assert done.returncode == 2 and "does not belong to its address" in done.stderr
    done = run(tmp_path, "ledger-wallet", "import", "missing.json", "--wallet", "t.json", "--no-passphrase",
               "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["code"] == "bad-key-file"
    done = run(tmp_path, "ledger-wallet", "import", str(keys), "--wallet", "other.json", "--no-passphrase", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["code"] == "wallet-exists"
