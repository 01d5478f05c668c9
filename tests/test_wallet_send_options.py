"""``ledger-wallet send`` options against a real one-validator node (issue 16, "Footguns and small lies"):
the maximum-fee guard and its warnings, ``--all``, ``--subtract-fee``, ``--dry-run --hex``, ``sent 1 coin``,
``--node host:port`` and addresses of other chains.  And ``send --wait`` against a two-validator network with
only one validator up ("Quorum you can see"): accepted, not committed, exit 1 with the txid.

Everything runs through the wallet's ``main`` with real arguments; the nodes run as processes on loopback
and are stopped by PID (``tests/netutil.py``) whatever happens.
"""

from __future__ import annotations

import json

import httpx
import pytest
from netutil import running_network

from node.crypto import encode_address
from node.types.transaction import COIN, Transaction
from wallet import cli
from wallet.amounts import format_coins
from wallet.coins import DEFAULT_FEE_RATE, estimate_size
from wallet.fees import MAX_FEE
from wallet.keystore import create_keystore

pytestmark = pytest.mark.processes

OVERRIDES = {"log_level": "INFO", "min_height_wait_ms": 2_000}
ONE_IN_ONE_OUT = DEFAULT_FEE_RATE * estimate_size(1, 1)
ONE_IN_TWO_OUT = DEFAULT_FEE_RATE * estimate_size(1, 2)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("sendopts"), validators=1, overrides=OVERRIDES) as network:
        network.wait_height(1)
        network.folder = tmp_path_factory.mktemp("wallets")
        yield network


def wallet(net, name: str, key: bytes | None = None) -> str:
    path = net.folder / f"{name}.json"
    if not path.exists():
        create_keystore(path, key, None, name=name)
    return str(path)


def run(capsys, net, *argv: str, node: str | None = None) -> tuple[int, dict | str, str]:
    """(exit code, parsed JSON if --json else stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(["--node", node or net.url(0), *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv else out), err


def address(capsys, net, path: str) -> str:
    code, out, _ = run(capsys, net, "--wallet", path, "address")
    assert code == 0
    assert isinstance(out, str)
    return out.strip()


def balance(capsys, net, path: str) -> int:
    code, out, err = run(capsys, net, "--wallet", path, "--json", "balance")
    assert code == 0, err
    assert isinstance(out, dict)
    return out["balance"]["base_units"]


def test_sent_one_coin_and_two_coins(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    to = address(capsys, net, wallet(net, "grammar"))
    code, out, err = run(capsys, net, "--wallet", faucet, "send", to, "1", "--wait")
    assert code == 0, err
    assert f"sent 1 coin (100000000 base units) to {to}" in out and "1 input," in out
    code, out, err = run(capsys, net, "--wallet", faucet, "send", to, "2", "--wait")
    assert code == 0, err
    assert "sent 2 coins (200000000 base units)" in out
    code, out, _ = run(capsys, net, "--wallet", wallet(net, "grammar"), "utxos")
    assert "2 unspent outputs, 3 coins (300000000 base units)" in out


def test_fee_guard_refuses_an_absurd_fee_unless_forced(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    to = address(capsys, net, wallet(net, "guarded"))
    before = balance(capsys, net, faucet)
    # the case: 500 coins of fee on a 1-coin payment
    code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "send", to, "1", "--fee", "500")
    assert code == cli.EXIT_USAGE and out["error"]["code"] == "fee-too-high", out
    assert out["error"]["max_fee"] == MAX_FEE and out["error"]["fee"] == 500 * COIN
    code, _, err = run(capsys, net, "--wallet", faucet, "send", to, "1", "--fee", "500")
    assert code == cli.EXIT_USAGE and "--force" in err and "0.1 coins" in err
    # a fee rate with the unit mistaken for coins
    code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "send", to, "1", "--fee-rate", "100000000")
    assert code == cli.EXIT_USAGE and out["error"]["code"] == "fee-too-high"
    # below the cap but more than the payment (and more than the default fee)
    code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "send", to, "0.001", "--fee", "0.01")
    assert code == cli.EXIT_USAGE and out["error"]["code"] == "fee-too-high"
    assert balance(capsys, net, faucet) == before  # nothing was sent
    code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "send", to, "0.001", "--fee", "0.01",
                       "--force", "--wait")
    assert code == 0 and out["status"] == "committed" and out["fee"]["base_units"] == COIN // 100, out
    assert any("smaller than its fee" in w for w in out["warnings"])
    assert balance(capsys, net, wallet(net, "guarded")) == COIN // 1000


def test_warnings_for_a_self_send_and_a_payment_below_its_fee(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    me = address(capsys, net, faucet)
    code, out, err = run(capsys, net, "--wallet", faucet, "send", me, "1", "--wait")
    assert code == 0, err
    assert "warning: the recipient is this wallet's own address" in err
    dust = address(capsys, net, wallet(net, "dust"))
    # a tiny payment at the default fee is allowed (not refused), but said
    code, out, err = run(capsys, net, "--wallet", faucet, "--json", "send", dust, "1000", "--base-units", "--wait")
    assert code == 0, out
    assert out["fee"]["base_units"] == ONE_IN_TWO_OUT > 1000
    assert out["warnings"] == [f"the payment of 0.00001 coins (1000 base units) is smaller than its fee of "
                               f"{format_coins(ONE_IN_TWO_OUT)} coins ({ONE_IN_TWO_OUT} base units)"]


def test_send_all_sweeps_and_subtract_fee_charges_the_recipient(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    sweeper, target = wallet(net, "sweeper"), wallet(net, "target")
    sweeper_address, target_address = address(capsys, net, sweeper), address(capsys, net, target)
    for amount in ("1.5", "2"):
        assert run(capsys, net, "--wallet", faucet, "send", sweeper_address, amount, "--wait")[0] == 0
    # --subtract-fee: the sender pays exactly the amount, the recipient gets it minus the fee
    code, out, err = run(capsys, net, "--wallet", sweeper, "--json", "send", target_address, "1", "--subtract-fee",
                         "--wait")
    assert code == 0, out
    fee = out["fee"]["base_units"]
    assert fee == ONE_IN_TWO_OUT and out["amount"]["base_units"] == COIN - fee
    assert balance(capsys, net, target) == COIN - fee
    assert balance(capsys, net, sweeper) == int(2.5 * COIN)
    # --all: everything minus the fee, no change, the wallet is empty afterwards
    code, out, err = run(capsys, net, "--wallet", sweeper, "send", target_address, "--all", "--wait")
    assert code == 0, err
    fee = DEFAULT_FEE_RATE * estimate_size(2, 1)
    assert "change 0 coins (0 base units), 2 inputs" in out
    assert balance(capsys, net, sweeper) == 0
    assert balance(capsys, net, target) == COIN - ONE_IN_TWO_OUT + int(2.5 * COIN) - fee
    # and what cannot be done says why
    code, out, _ = run(capsys, net, "--wallet", sweeper, "--json", "send", target_address, "--all")
    assert code == cli.EXIT_FAILED and out["error"]["code"] == "insufficient-funds"
    for argv, expected in ((["1", "--all"], "bad-usage"), ([], "bad-usage"), (["--all", "--subtract-fee"], "bad-usage"),
                           (["0.00000100", "--subtract-fee"], "fee-exceeds-amount")):
        code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "send", target_address, *argv)
        assert code == cli.EXIT_USAGE and out["error"]["code"] == expected, (argv, out)


def test_dry_run_hex_builds_and_signs_without_submitting(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    to = address(capsys, net, wallet(net, "integrator"))
    code, out, err = run(capsys, net, "--wallet", faucet, "send", to, "1", "--dry-run", "--hex")
    assert code == 0, err
    assert isinstance(out, str)
    hex_line, txid = out.split()  # stdout: the bytes and the txid, nothing else
    tx = Transaction.decode(bytes.fromhex(hex_line))
    assert tx.txid.hex() == txid and tx.outputs[0].amount == COIN and encode_address(tx.outputs[0].address) == to
    assert "not submitted" in err and "would send 1 coin" in err
    code, answer, _ = run(capsys, net, "--wallet", faucet, "--json", "tx", txid)
    assert code == cli.EXIT_FAILED and answer["status"] == "unknown"  # the node never saw it
    code, answer, _ = run(capsys, net, "--wallet", faucet, "--json", "send", to, "1", "--dry-run")
    assert code == 0 and answer["status"] == "not-submitted" and answer["node"] is None
    assert Transaction.decode(bytes.fromhex(answer["hex"])).txid.hex() == answer["txid"]
    # what an integrator does with it: POST the hex, and it commits
    response = httpx.post(net.url(0) + "/v1/txs", params={"wait": "commit"}, json={"tx": hex_line}, timeout=30)
    assert response.status_code == 200 and response.json()["txid"] == txid, response.text
    assert balance(capsys, net, wallet(net, "integrator")) == COIN


def test_node_without_scheme_and_foreign_addresses(net, capsys):
    faucet = wallet(net, "faucet", net.wallets["faucet"])
    bare = net.url(0).removeprefix("http://")
    code, out, err = run(capsys, net, "--wallet", faucet, "--json", "balance", node=bare)
    assert code == 0 and out["node"] == net.url(0), err
    for foreign, kind in (("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "Bitcoin"),
                          ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "Bitcoin"),
                          ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "Bitcoin"),
                          ("0x52908400098527886E0F7030069857D2E4169EE7", "Ethereum")):
        code, out, err = run(capsys, net, "--wallet", faucet, "send", foreign, "1", node=bare)
        assert code == cli.EXIT_USAGE and "looks like a" in err and f"{kind} address" in err
        assert "ledger addresses start with lg1" in err, err
        code, out, _ = run(capsys, net, "--wallet", faucet, "--json", "balance", foreign, node=bare)
        assert code == cli.EXIT_USAGE and out["error"]["code"] == "bad-address", out


def test_wait_that_runs_out_names_the_node_and_prints_the_txid(tmp_path, capsys):
    """Two validators of equal power, one up: the node takes the transaction, nothing commits."""
    with running_network(tmp_path / "net", validators=2, start=False, overrides=OVERRIDES) as net:
        net.start(0)
        net.wait_ready([0])
        net.folder = tmp_path
        faucet = wallet(net, "faucet", net.wallets["faucet"])
        to = address(capsys, net, wallet(net, "waiting"))
        code, out, err = run(capsys, net, "--wallet", faucet, "send", to, "1", "--wait", "--wait-timeout", "2")
        assert code == cli.EXIT_FAILED, err
        assert f"accepted by {net.url(0)}, not committed yet" in err and "cannot reach" not in err
        txid = out.split("txid ", 1)[1].split()[0]
        assert len(txid) == 64 and txid in err
        code, answer, _ = run(capsys, net, "--wallet", faucet, "--json", "tx", txid)
        assert code == 0 and answer["status"] == "pending"  # the node really has it
        alice = wallet(net, "alice", net.wallets["alice"])  # the faucet's coins are spent by the pending one
        code, answer, _ = run(capsys, net, "--wallet", alice, "--json", "send", to, "1", "--wait",
                              "--wait-timeout", "1")
        assert code == cli.EXIT_FAILED
        assert answer["status"] == "pending" and answer["node"] == net.url(0) and len(answer["txid"]) == 64
        assert answer["error"]["code"] == "not-committed-yet"
