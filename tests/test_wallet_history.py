"""Wallet history that says what happened: ``node.address_history`` on a store built block by block, the REST
answer, and ``ledger-wallet history`` on a live devnet with sends both ways."""

from __future__ import annotations

import time

import pytest

from genesis.document import Allocation, ConsensusParams, Genesis, GenesisValidator, encode_genesis
from node import address_history
from node.address_history import HistoryError, genesis_allocation_amount, read_address_history
from node.ledger.state import fee_outpoint, genesis_txid
from node.ledger.store import Store
from node.types.transaction import OutPoint
from tests.ledger.ledger_helpers import CHAIN, addr, build_block, commit, gen_op, key, pub, transfer

AMOUNT = 1_000_000
GENESIS_TIME = 1_700_000_000_000


def genesis_doc(n: int) -> bytes:
    genesis = Genesis(CHAIN, GENESIS_TIME, (GenesisValidator("v0", pub(key(99)), 10),),
                      tuple(Allocation(addr(key(i)), AMOUNT + i) for i in range(n)), ConsensusParams())
    return encode_genesis(genesis)


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "db"))
    s.initialize_genesis(CHAIN, b"G" * 32, [(addr(key(i)), AMOUNT + i) for i in range(4)], genesis_doc(4))
    yield s
    s.close()


def test_genesis_allocation_is_read_at_its_offset():
    doc = genesis_doc(5)
    assert [genesis_allocation_amount(doc, i) for i in range(5)] == [AMOUNT + i for i in range(5)]
    assert genesis_allocation_amount(doc, 5) is None
    assert genesis_allocation_amount(b'{"doc": 1}', 0) is None


def test_sent_received_fee_and_counterparties(store):
    a0, a1, a7 = addr(key(0)), addr(key(1)), addr(key(7))
    # block 1 (proposer key 7): a0 pays a1 300 with fee 100, change to itself
    t1 = transfer([(gen_op(0), key(0))], [(a1, 300), (a0, AMOUNT - 400)])
    b1, r1 = build_block(store, [t1], proposer=a7, time_ms=5_000)
    commit(store, b1, r1)
    # block 2: a1 pays a0 250 out of what a0 sent it (fee 50)
    t2 = transfer([(OutPoint(t1.txid, 0), key(1))], [(a0, 250)])
    b2, r2 = build_block(store, [t2], proposer=a7, time_ms=6_000)
    commit(store, b2, r2)
    hist = read_address_history(store, a0, 10, None)
    assert [(e.kind, e.height, e.index) for e in hist] == [("tx", 2, 0), ("tx", 1, 0), ("genesis", 0, 0)]
    got, paid, gen = hist
    assert (got.received, got.sent, got.net, got.fee, got.counterparties, got.time_ms) == (250, 0, 250, 50, (a1,),
                                                                                            6_000)
    assert (paid.received, paid.sent, paid.net, paid.fee, paid.counterparties) == (AMOUNT - 400, AMOUNT, -400, 100,
                                                                                    (a1,))
    assert (gen.txid, gen.received, gen.net, gen.fee, gen.time_ms) == (genesis_txid(CHAIN), AMOUNT, AMOUNT, 0,
                                                                        GENESIS_TIME)
    # a1's view of the same two transactions; the proposer's fee outputs
    assert [(e.net, e.fee, e.counterparties) for e in read_address_history(store, a1, 2, None)] == [
        (-300, 50, (a0,)), (300, 100, (a0,))]
    fees = read_address_history(store, a7, 10, None)
    assert [(e.kind, e.received, e.fee, e.counterparties) for e in fees] == [("fee", 50, 0, ()), ("fee", 100, 0, ())]
    # paging: strictly before the cursor
    assert [e.height for e in read_address_history(store, a0, 1, (1, 0))] == [0]


def test_spent_genesis_and_fee_outputs_keep_their_amounts(store):
    a0, a2, a7 = addr(key(0)), addr(key(2)), addr(key(7))
    t1 = transfer([(gen_op(0), key(0))], [(a2, AMOUNT - 1_000)])  # fee 1000 to key 7
    b1, r1 = build_block(store, [t1], proposer=a7)
    commit(store, b1, r1)
    fee_op = fee_outpoint(CHAIN, 1)
    assert store.get_utxo(fee_op).amount == 1_000
    t2 = transfer([(fee_op, key(7)), (gen_op(2), key(2))], [(a0, 1_000 + AMOUNT + 2 - 10)])  # fee 10 to key 2
    b2, r2 = build_block(store, [t2], proposer=a2)
    commit(store, b2, r2)
    assert store.get_utxo(fee_op) is None and store.get_utxo(gen_op(0)) is None
    spend = read_address_history(store, a7, 1, None)[0]  # the fee output of block 1 is gone from the UTXO set
    assert (spend.kind, spend.sent, spend.received, spend.fee, spend.counterparties) == ("tx", 1_000, 0, 10, (a0,))
    earned = read_address_history(store, a7, 1, (2, 0))[0]
    assert (earned.kind, earned.height, earned.received) == ("fee", 1, 1_000)
    assert read_address_history(store, a0, 5, None)[-1].received == AMOUNT  # spent genesis allocation
    got = read_address_history(store, a0, 1, None)[0]
    assert (got.received, got.fee, set(got.counterparties)) == (1_000 + AMOUNT + 2 - 10, 10, {a7, a2})


def test_unreadable_amounts_are_a_coded_error(store, monkeypatch):
    a0, a7 = addr(key(0)), addr(key(7))
    t1 = transfer([(gen_op(0), key(0))], [(addr(key(1)), AMOUNT - 1_000)])
    b1, r1 = build_block(store, [t1], proposer=a7)
    commit(store, b1, r1)
    t2 = transfer([(fee_outpoint(CHAIN, 1), key(7))], [(a0, 900)])
    b2, r2 = build_block(store, [t2], proposer=a7)
    commit(store, b2, r2)
    monkeypatch.setattr(address_history, "MAX_LOOKUPS", 1)
    with pytest.raises(HistoryError) as info:  # one entry's budget
        address_history.describe_entry(store, a0, 2, 0, t2.txid, "tx")
    assert info.value.code == "history-unresolved"
    monkeypatch.setattr(address_history, "PAGE_LOOKUPS", 1)
    with pytest.raises(HistoryError) as info:  # and a page's
        read_address_history(store, a0, 1, None)
    assert info.value.code == "history-unresolved"


def test_a_page_costs_the_same_for_a_long_history(tmp_path):
    """Paging an address with many appearances reads only the page (no scan)."""
    a = addr(key(0))
    n = 100_000
    with Store.open(str(tmp_path / "db")) as s:
        s.initialize_genesis(CHAIN, b"G" * 32, [(a, 1)] * n, genesis_doc(1))
        started = time.perf_counter()
        page = read_address_history(s, a, 100, None)
        deep = read_address_history(s, a, 100, (0, 50_000))
        elapsed = time.perf_counter() - started
    assert [e.index for e in page] == list(range(n - 1, n - 101, -1))
    assert [e.index for e in deep] == list(range(49_999, 49_899, -1))
    assert all(e.received == 1 for e in page + deep)
    assert elapsed < 1.0, elapsed


# --------------------------------------------------------------------------- ledger-wallet history, live


@pytest.mark.processes
def test_wallet_history_on_a_live_devnet(tmp_path, capsys):
    import json

    from netutil import running_network

    from node.crypto import encode_address
    from node.types.transaction import COIN
    from wallet import cli
    from wallet.amounts import format_coins
    from wallet.keystore import create_keystore

    with running_network(tmp_path / "net", validators=1, overrides={"log_level": "INFO"}) as net:
        net.wait_height(1)
        faucet, bob = str(tmp_path / "faucet.json"), str(tmp_path / "bob.json")
        create_keystore(faucet, net.wallets["faucet"], None, name="faucet")
        create_keystore(bob, net.wallets["bob"], None, name="bob")
        faucet_address, bob_address = (encode_address(net.address(w)) for w in ("faucet", "bob"))

        def wallet(path: str, *argv: str) -> str:
            capsys.readouterr()
            assert cli.main(["--wallet", path, "--node", net.url(0), *argv]) == 0
            return capsys.readouterr().out

        wallet(faucet, "send", bob_address, "2", "--wait")
        wallet(bob, "send", faucet_address, "0.5", "--wait")
        answer = json.loads(wallet(bob, "--json", "history"))
        back, got = answer["txs"][:2]
        assert (got["net"], got["received"], got["sent"], got["counterparties"]) == (2 * COIN, 2 * COIN, 0,
                                                                                      [faucet_address])
        assert got["fee"] > 0 and got["time"].endswith(" UTC") and got["height"] >= 2
        assert back["counterparties"] == [faucet_address] and back["fee"] > 0
        assert back["net"] == -(COIN // 2) - back["fee"] and back["sent"] - back["received"] == -back["net"]
        assert back["height"] > got["height"] and back["time_ms"] >= got["time_ms"]
        # the node's REST answer carries the same, and the faucet sees both sides
        rest = net.client.get(net.url(0) + f"/v1/addresses/{faucet_address}/txs").json()["txs"]
        assert [(t["net"], t["counterparties"]) for t in rest[:2]] == [
            (COIN // 2, [bob_address]), (-2 * COIN - got["fee"], [bob_address])]
        assert rest[-1]["kind"] == "genesis" and rest[-1]["net"] > 0
        text = wallet(bob, "history").splitlines()
        assert "-0.5" in text[0] and f"to {faucet_address}" in text[0] and " UTC " in text[0]
        assert "+2 coins" in text[1] and f"from {faucet_address}" in text[1] and f"height {got['height']:>8}" in text[1]
        assert f"fee {format_coins(back['fee'])} " in text[0] and f"fee {format_coins(got['fee'])} " in text[1]
        print("\n".join(text))
