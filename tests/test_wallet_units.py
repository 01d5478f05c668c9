"""Wallet building blocks: amounts, keystore, coin selection, address errors (no network, no processes)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from genesis.build import derive_private_key
from node.crypto import address_hash, derive_public_key, encode_address
from node.types.transaction import COIN, MAX_SUPPLY, OutPoint, TxOutput, sign_transaction
from wallet import cli, context
from wallet.amounts import AmountError, amount_json, describe_amount, format_coins, parse_amount
from wallet.coins import Coin, SelectionError, estimate_size, select_coins
from wallet.keystore import KeystoreError, create_keystore, load_keystore

FAST_N = 2**10  # scrypt cost for tests: the format is the same, only slower to guess in real use


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("text, base", [
    ("1", COIN), ("1.5", 150_000_000), ("0.00000001", 1), (".5", 50_000_000), ("2.", 2 * COIN),
    ("1_000", 1000 * COIN), (" 3 ", 3 * COIN), ("21000000", MAX_SUPPLY),
])
def test_parse_amount_in_coins(text, base):
    assert parse_amount(text) == base


@pytest.mark.parametrize("text", ["", ".", "-1", "1e3", "abc", "1.000000001", "0", "0.0", "21000000.00000001",
                                  "1,5", "١", "nan", "+1"])
def test_parse_amount_rejects(text):
    with pytest.raises(AmountError) as info:
        parse_amount(text)
    assert info.value.code == "bad-amount"


def test_parse_amount_messages_say_why():
    with pytest.raises(AmountError, match="at most 8"):
        parse_amount("0.123456789")
    with pytest.raises(AmountError, match="more than zero"):
        parse_amount("0")


def test_parse_base_units():
    assert parse_amount("150000000", base_units=True) == 150_000_000
    assert parse_amount("0", base_units=True, allow_zero=True) == 0
    for bad in ("1.5", "-3", "", "1e9"):
        with pytest.raises(AmountError):
            parse_amount(bad, base_units=True)


def test_format_amounts_are_exact():
    assert format_coins(150_000_000) == "1.5"
    assert format_coins(1) == "0.00000001"
    assert format_coins(1_000_000 * COIN) == "1,000,000"
    assert describe_amount(250_000_000) == "2.5 coins (250000000 base units)"
    assert amount_json(1) == {"base_units": 1, "coins": "0.00000001"}
    for value in (1, 99, COIN - 1, COIN, 123_456_789_012, MAX_SUPPLY):
        assert parse_amount(format_coins(value).replace(",", "")) == value


# --------------------------------------------------------------------------- keystore


def test_keystore_round_trip_with_passphrase(tmp_path):
    key = derive_private_key(b"test_wallet_units", "round-trip")
    path = tmp_path / "w.json"
    store = create_keystore(path, key, "correct horse", scrypt_n=FAST_N)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert key.hex() not in text  # sealed, not stored
    loaded = load_keystore(path)
    assert loaded.encrypted and loaded.address == store.address == encode_address(address_hash(derive_public_key(key)))
    assert loaded.unlock("correct horse") == key


def test_keystore_refuses_wrong_passphrase(tmp_path):
    path = tmp_path / "w.json"
    create_keystore(path, None, "right", scrypt_n=FAST_N)
    store = load_keystore(path)
    with pytest.raises(KeystoreError) as info:
        store.unlock("wrong")
    assert info.value.code == "wrong-passphrase"
    with pytest.raises(KeystoreError) as info:
        store.unlock(None)
    assert info.value.code == "passphrase-required"


def test_keystore_ciphertext_bound_to_its_address(tmp_path):
    a = create_keystore(tmp_path / "a.json", None, "pw", scrypt_n=FAST_N)
    b = create_keystore(tmp_path / "b.json", None, "pw", scrypt_n=FAST_N)
    data = json.loads((tmp_path / "b.json").read_text())
    data["encryption"] = a.data["encryption"]  # a's sealed key moved into b's file
    (tmp_path / "b.json").write_text(json.dumps(data))
    with pytest.raises(KeystoreError) as info:
        load_keystore(tmp_path / "b.json").unlock("pw")
    assert info.value.code == "wrong-passphrase"
    assert b.address != a.address


def test_keystore_without_passphrase_and_file_checks(tmp_path):
    key = derive_private_key(b"test_wallet_units", "dev")
    path = tmp_path / "dev.json"
    create_keystore(path, key, None, name="dev")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store = load_keystore(path)
    assert not store.encrypted and store.name == "dev" and store.unlock(None) == key
    with pytest.raises(KeystoreError) as info:
        create_keystore(path, None, None)
    assert info.value.code == "wallet-exists"
    with pytest.raises(KeystoreError) as info:
        create_keystore(tmp_path / "e.json", None, "", scrypt_n=FAST_N)
    assert info.value.code == "empty-passphrase"
    data = json.loads(path.read_text())
    data["address"] = encode_address(bytes(20))
    path.write_text(json.dumps(data))
    with pytest.raises(KeystoreError) as info:
        load_keystore(path)
    assert info.value.code == "bad-keystore"
    with pytest.raises(KeystoreError) as info:
        load_keystore(tmp_path / "missing.json")
    assert info.value.code == "no-wallet"


def test_pinning_keeps_mode_0600(tmp_path):
    path = tmp_path / "w.json"
    store = create_keystore(path, None, None)
    store.pin_genesis("devnet", "ab" * 32)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keystore(path).trusted_genesis == {"chain_id": "devnet", "genesis_hash": "ab" * 32}


# --------------------------------------------------------------------------- coin selection


def coin(amount: int, n: int = 0, height: int = 1) -> Coin:
    return Coin(OutPoint(bytes([n]) * 32, n), amount, height)


def test_estimate_size_is_the_real_encoding_size():
    key = derive_private_key(b"test_wallet_units", "size")
    addr = address_hash(derive_public_key(key))
    for n_in, n_out in ((1, 1), (1, 2), (3, 2), (7, 1)):
        tx = sign_transaction("c", [(OutPoint(bytes([i]) * 32, i), key) for i in range(n_in)],
                              [TxOutput(addr, 5)] * n_out)
        assert tx.size == estimate_size(n_in, n_out)


def test_selection_pays_amount_fee_and_change():
    sel = select_coins([coin(10 * COIN, 1), coin(3 * COIN, 2)], 2 * COIN, fee_rate=10)
    assert [c.outpoint.index for c in sel.inputs] == [1]  # largest first: one input
    assert sel.fee == 10 * estimate_size(1, 2)
    assert sel.change == 10 * COIN - 2 * COIN - sel.fee
    assert sel.total_in == sel.amount + sel.fee + sel.change


def test_selection_adds_coins_until_enough():
    coins = [coin(COIN, i) for i in range(1, 6)]
    sel = select_coins(coins, 3 * COIN, fee=1000)
    assert len(sel.inputs) == 4 and sel.fee == 1000 and sel.change == COIN - 1000


def test_selection_without_change_when_exact():
    sel = select_coins([coin(5 * COIN + 700)], 5 * COIN, fee=700)
    assert sel.change == 0 and sel.fee == 700
    # the leftover after a one-output fee is too small for a change output: it joins the fee
    rate = 10
    total = 5 * COIN + rate * estimate_size(1, 1) + 5
    sel = select_coins([coin(total)], 5 * COIN, fee_rate=rate)
    assert sel.change == 0 and sel.fee == total - 5 * COIN


def test_insufficient_funds_reports_the_shortfall():
    with pytest.raises(SelectionError) as info:
        select_coins([coin(COIN, 1), coin(COIN, 2)], 3 * COIN, fee=500)
    exc = info.value
    assert exc.code == "insufficient-funds"
    assert exc.details == {"needed": 3 * COIN + 500, "available": 2 * COIN, "shortfall": COIN + 500}
    with pytest.raises(SelectionError) as info:
        select_coins([], 1, fee=0)
    assert info.value.details["shortfall"] == 1


def test_selection_is_deterministic_and_rejects_nonsense():
    coins = [coin(COIN, i, height=10 - i) for i in range(1, 4)]
    assert select_coins(coins, COIN // 2) == select_coins(list(reversed(coins)), COIN // 2)
    with pytest.raises(SelectionError):
        select_coins(coins, 0)
    with pytest.raises(SelectionError):
        select_coins(coins, 1, fee=-1)


# --------------------------------------------------------------------------- CLI errors that need no node


def test_cli_bad_address_reports_checksum(tmp_path, capsys):
    wallet = tmp_path / "w.json"
    assert cli.main(["--wallet", str(wallet), "new", "--no-passphrase"]) == 0
    address = load_keystore(wallet).address
    typo = address[:-1] + ("q" if address[-1] != "q" else "p")
    capsys.readouterr()
    assert cli.main(["--wallet", str(wallet), "send", typo, "1"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "checksum" in err and typo in err
    assert cli.main(["send", typo, "1", "--wallet", str(wallet), "--json"]) == cli.EXIT_USAGE
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "bad-address-checksum"
    assert cli.main(["--wallet", str(wallet), "balance", "lg1notanaddress"]) == cli.EXIT_USAGE


def test_cli_new_address_and_bad_amount(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WALLET_PW", "s3cret")
    wallet = tmp_path / "enc.json"
    assert cli.main(["new", "--wallet", str(wallet), "--passphrase-env", "WALLET_PW", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["encrypted"] is True
    assert stat.S_IMODE(os.stat(wallet).st_mode) == 0o600
    assert cli.main(["address", "--wallet", str(wallet)]) == 0
    assert capsys.readouterr().out.strip() == made["address"]
    assert cli.main(["new", "--wallet", str(wallet), "--no-passphrase"]) == cli.EXIT_USAGE  # never overwrite
    assert cli.main(["send", made["address"], "1.000000001", "--wallet", str(wallet)]) == cli.EXIT_USAGE
    assert "decimal places" in capsys.readouterr().err
    monkeypatch.setenv("WALLET_PW", "wrong")
    assert cli.main(["send", made["address"], "1", "--wallet", str(wallet), "--passphrase-env", "WALLET_PW",
                     "--node", "http://127.0.0.1:9"]) == cli.EXIT_USAGE
    assert "wrong passphrase" in capsys.readouterr().err


def test_cli_node_unreachable(tmp_path, capsys):
    wallet = tmp_path / "w.json"
    cli.main(["--wallet", str(wallet), "new", "--no-passphrase"])
    capsys.readouterr()
    from devnet.cluster import free_ports

    port = free_ports(1)[0]
    assert cli.main(["--wallet", str(wallet), "--node", f"http://127.0.0.1:{port}", "balance"]) == cli.EXIT_UNREACHABLE
    assert "cannot reach the node" in capsys.readouterr().err


# --------------------------------------------------------------------------- node choice


def test_client_skips_unhealthy_and_unreachable_nodes():
    import httpx

    from wallet.client import NodeClient, NodeError, NodeUnreachable

    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.host, request.url.path))
        if request.url.host == "dead":
            raise httpx.ConnectError("connection refused")
        if request.url.host == "failed":
            return httpx.Response(503, json={"error": {"code": "node-failed", "message": "x"}})
        if request.url.path == "/v1/missing":
            return httpx.Response(404, json={"error": {"code": "tx-not-found", "message": "nope", "status": "unknown"}})
        return httpx.Response(200, json={"ok": True, "host": request.url.host})

    with NodeClient(["http://dead", "http://failed", "http://good"], transport=httpx.MockTransport(handle)) as client:
        assert client.get("/v1/status")["host"] == "good" and client.url == "http://good"
        with pytest.raises(NodeError) as info:
            client.get("/v1/missing")
        assert info.value.code == "tx-not-found" and info.value.status == 404
        assert info.value.details == {"status": "unknown"}
    with NodeClient(["http://dead"], transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(NodeUnreachable, match="dead"):
            client.get("/v1/status")
    # a connection refused mid-way moves on to the next node
    with NodeClient(["http://good", "http://dead"], transport=httpx.MockTransport(handle)) as client:
        client.url, client._picked = "http://dead", True
        assert client.get("/v1/status")["host"] == "good"


def test_default_node_comes_from_the_wallets_own_devnet(tmp_path, monkeypatch):
    """--node, else $LEDGER_NODE, else the devnet the wallet file is in, else ./.devnet, else the default."""
    def network(home, port):
        home.mkdir(parents=True, exist_ok=True)
        (home / "network.json").write_text(json.dumps({"nodes": [{"host": "127.0.0.1", "port": port}]}))

    network(tmp_path / ".devnet", 1111)
    network(tmp_path / "two", 2222)
    (tmp_path / "two" / "wallets").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_NODE", raising=False)

    def urls(*argv):
        args = cli.build_parser().parse_args([*argv, "balance"])
        for key, value in cli.COMMON_DEFAULTS.items():
            if not hasattr(args, key):
                setattr(args, key, value)
        return cli.Context(args, None).node_urls()

    assert urls("--wallet", "two/wallets/faucet.json") == ["http://127.0.0.1:2222"]
    assert urls("--wallet", str(tmp_path / "two" / "me.json")) == ["http://127.0.0.1:2222"]
    assert urls("--wallet", "elsewhere/w.json") == ["http://127.0.0.1:1111"]  # outside any devnet: ./.devnet
    assert urls("--wallet", "two/wallets/faucet.json", "--node", "http://a,http://b") == ["http://a", "http://b"]
    monkeypatch.setenv("LEDGER_NODE", "http://env")
    assert urls("--wallet", "two/wallets/faucet.json") == ["http://env"]
    monkeypatch.delenv("LEDGER_NODE")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert urls("--wallet", "w.json") == [cli.DEFAULT_NODE]


def test_trust_shows_the_pin_with_no_node_up(tmp_path, capsys):
    from devnet.cluster import free_ports
    from genesis.build import make_devnet_genesis
    from genesis.document import genesis_hash
    from wallet.trust import TrustedChain, pin_chain

    genesis, _, wallets = make_devnet_genesis(1, chain_id="offline", seed=b"o", genesis_time_ms=1)
    store = create_keystore(tmp_path / "w.json", wallets["faucet"], None)
    pin_chain(store, TrustedChain.of(genesis))
    port = free_ports(1)[0]
    assert cli.main(["--wallet", str(store.path), "--node", f"http://127.0.0.1:{port}", "--json", "trust"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["genesis_hash"] == genesis_hash(genesis).hex() and out["node"] is None
    assert "not compared with any node" in captured.err


def test_cli_prompts_for_the_passphrase(tmp_path, capsys, monkeypatch):
    answers = iter(["first", "second", "same", "same"])
    monkeypatch.setattr(context.getpass, "getpass", lambda prompt="": next(answers))
    wallet = tmp_path / "prompted.json"
    assert cli.main(["new", "--wallet", str(wallet)]) == cli.EXIT_USAGE  # the two entries differ
    assert "differ" in capsys.readouterr().err and not wallet.exists()
    assert cli.main(["new", "--wallet", str(wallet)]) == 0
    assert load_keystore(wallet).unlock("same")

    def no_tty(prompt=""):
        raise EOFError

    monkeypatch.setattr(context.getpass, "getpass", no_tty)
    assert cli.main(["new", "--wallet", str(tmp_path / "other.json")]) == cli.EXIT_USAGE
    assert "--passphrase-env" in capsys.readouterr().err


def test_amounts_read_as_english():
    from wallet.amounts import plural

    assert describe_amount(COIN) == "1 coin (100000000 base units)"
    assert describe_amount(2 * COIN) == "2 coins (200000000 base units)"
    assert describe_amount(1) == "0.00000001 coins (1 base unit)"
    assert describe_amount(0) == "0 coins (0 base units)"
    assert (plural(1, "input"), plural(2, "input"), plural(0, "input")) == ("1 input", "2 inputs", "0 inputs")
