"""``ledger-wallet watch`` and ``send --wait`` on the node's event stream, against a real one-validator node
(a process on loopback, stopped by PID whatever happens); and the stream parsing and payment arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from netutil import running_network

from node.crypto import address_hash, derive_public_key, encode_address
from wallet import cli, send_command
from wallet.keystore import create_keystore
from wallet.watch_command import payment_of, read_events

OVERRIDES = {"log_level": "INFO", "event_keepalive_ms": 1_000}


def test_read_events_parses_fields_and_pings():
    lines = [": ping", "", "event: tx", "id: 7.1", 'data: {"txid": "ab", "height": 7, "index": 0}', "",
             "event: reset", "data:{\"from_height\": 3}", "", "event: tx", "data: not json", ""]
    assert list(read_events(lines)) == [
        {"ping": True},
        {"event": "tx", "id": "7.1", "data": {"txid": "ab", "height": 7, "index": 0}},
        {"event": "reset", "data": {"from_height": 3}},
        {"event": "tx", "data": None},
    ]


def test_payment_of_received_and_sent():
    key = (11).to_bytes(32, "big")
    public = derive_public_key(key)
    own = address_hash(public)
    other = encode_address(b"\x01" * 20)
    incoming = {"inputs": [{"public_key": derive_public_key((12).to_bytes(32, "big")).hex()}],
                "outputs": [{"address": encode_address(own), "amount": 500}, {"address": other, "amount": 9}]}
    assert payment_of(incoming, own) == {"direction": "received", "received": 500, "sent": 0, "to": []}
    outgoing = {"inputs": [{"public_key": public.hex()}],
                "outputs": [{"address": other, "amount": 300}, {"address": encode_address(own), "amount": 150}]}
    assert payment_of(outgoing, own) == {"direction": "sent", "received": 150, "sent": 300, "to": [other]}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("watch"), validators=1, overrides=OVERRIDES) as network:
        network.wait_height(1)
        network.folder = tmp_path_factory.mktemp("wallets")
        yield network


def wallet(net, name: str) -> str:
    path = net.folder / f"{name}.json"
    if not path.exists():
        create_keystore(path, net.wallets.get(name), None, name=name)
    return str(path)


@pytest.mark.processes
def test_watch_prints_payments_to_and_from_the_wallet(net, capsys):
    alice = wallet(net, "alice")
    alice_address = encode_address(net.address("alice"))
    carol = encode_address(b"\x0c" * 20)
    watcher = subprocess.Popen([sys.executable, "-m", "wallet.cli", "--node", net.url(0), "--wallet", alice,
                                "--json", "watch", "--count", "2", "--for", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while "ledger_event_clients 1.0" not in net.client.get(net.url(0) + "/metrics").text:
            assert watcher.poll() is None, watcher.communicate()
            assert time.monotonic() < deadline, "watch never opened its stream"
            time.sleep(0.1)
        assert cli.main(["--node", net.url(0), "--wallet", wallet(net, "faucet"), "send", alice_address, "2",
                         "--wait"]) == 0
        assert cli.main(["--node", net.url(0), "--wallet", alice, "send", carol, "0.5", "--wait"]) == 0
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(5)
    assert watcher.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["direction"] for line in lines] == ["received", "sent"]
    assert lines[0]["received"]["base_units"] == 200_000_000
    assert lines[1]["sent"]["base_units"] == 50_000_000 and lines[1]["to"] == [carol]
    assert lines[0]["height"] < lines[1]["height"]
    for line in lines:
        tx = net.client.get(net.url(0) + f"/v1/txs/{line['txid']}").json()
        assert tx["status"] == "committed" and tx["height"] == line["height"] and tx["index"] == line["index"]


@pytest.mark.processes
def test_watch_stops_after_its_time_and_prints_text(net):
    done = subprocess.run([sys.executable, "-m", "wallet.cli", "--node", net.url(0), "--wallet", wallet(net, "bob"),
                           "watch", "--for", "2"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "watching lg1" in done.stderr


@pytest.mark.processes
def test_send_wait_learns_the_commit_from_the_event_stream(net, capsys, monkeypatch):
    asked: list[int | None] = []
    poll = send_command.poll_committed

    def recording_poll(ctx, txid, deadline, height=None):
        asked.append(height)
        return poll(ctx, txid, deadline, height)
    monkeypatch.setattr(send_command, "poll_committed", recording_poll)
    to = encode_address(b"\x0d" * 20)
    capsys.readouterr()
    code = cli.main(["--node", net.url(0), "--wallet", wallet(net, "faucet"), "--json", "send", to, "1", "--wait"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "committed"
    # the height came from the event; the proof was then fetched once at that height, and verified
    assert asked == [result["height"]]
    assert result["verified"] is True and result["signed_power"] == result["total_power"] > 0


@pytest.mark.processes
def test_watch_exits_3_when_no_node_answers(net):
    done = subprocess.run([sys.executable, "-m", "wallet.cli", "--node", "http://127.0.0.1:9", "--wallet",
                           wallet(net, "bob"), "watch", "--for", "60"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, (done.stdout, done.stderr)  # gave up after its reconnections, well before 60 s
    assert "dropped 6 times in a row; giving up" in done.stderr
