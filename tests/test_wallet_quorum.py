"""Verified reads (``wallet.quorum``): an answer is believed only when validators holding more than 1/3 of the voting
power sign it alike.  The grouping and the threshold with fake answers, then a real devnet where validators run
as Byzantine processes that lie about balances (``devnet.byzantine --lie-balances``) and are outvoted, or, when
more than 1/3 lies alike, refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from netutil import running_network

from node.attestation import BALANCE, balance_body, sign_attestation
from node.crypto import SigningKey, derive_public_key, encode_address
from node.types.validators import Validator, ValidatorSet
from wallet import cli
from wallet.keystore import create_keystore
from wallet.quorum import NO_QUORUM, NodeAnswer, QuorumError, decide

CHAIN = "quorum-test"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
ADDRESS = bytes(20)


def validator_set(*powers: int) -> ValidatorSet:
    return ValidatorSet(Validator(f"v{i}", derive_public_key(k.private_key), p) for i, (k, p) in
                        enumerate(zip(KEYS, powers, strict=False)))


def answer(i: int, amount: int, height: int = 7, key: SigningKey | None = None) -> NodeAnswer:
    """Node ``i``'s balance answer, signed by ``key`` (its own by default)."""
    body = balance_body(amount)
    signer = key if key is not None else KEYS[i]
    att = sign_attestation(signer, CHAIN, BALANCE, height, ADDRESS, body)
    return NodeAnswer(f"http://node{i}", height, body, amount, att.validator, None)


def test_one_liar_of_four_is_outvoted():
    agreement = decide([answer(0, 100), answer(1, 100), answer(2, 100), answer(3, 999)], validator_set(1, 1, 1, 1), 7)
    assert agreement.answer.value == 100 and agreement.signers == ("v0", "v1", "v2")
    assert agreement.summary().startswith("agreed by 3 of 4 validators (3 of 4 voting power")


def test_more_than_a_third_must_sign_and_only_one_answer_may():
    powers = validator_set(1, 1, 1, 1)
    # two liars with different lies: the honest half is the only answer over 1/3
    agreement = decide([answer(0, 100), answer(1, 100), answer(2, 5), answer(3, 7)], powers, 7)
    assert (agreement.answer.value, len(agreement.signers)) == (100, 2)
    # two liars alike: two answers over 1/3 each, so more than 1/3 lies; nothing is believed
    with pytest.raises(QuorumError) as info:
        decide([answer(0, 100), answer(1, 100), answer(2, 5), answer(3, 5)], powers, 7)
    assert info.value.code == NO_QUORUM and "more than 1/3 lies" in info.value.message
    assert [s["answer"] for s in info.value.details["said"]] == [100, 100, 5, 5]
    # exactly 1/3 is not more than 1/3
    with pytest.raises(QuorumError, match="no answer is signed by more than 1/3"):
        decide([answer(0, 100), answer(1, 5)], validator_set(1, 1, 1), 7)
    # power, not heads: one validator with 4 of 6 beats two with 1 each (2 of 6 is not over 1/3)
    agreement = decide([answer(0, 100), answer(1, 5), answer(2, 5)], validator_set(4, 1, 1), 7)
    assert agreement.answer.value == 100 and agreement.signers == ("v0",)


def test_a_node_cannot_speak_for_another_or_count_twice():
    powers = validator_set(1, 1, 1, 1)
    # node 3 relays validator 0's signed answer (or signs with a key outside the set): no extra power
    outsider = SigningKey(bytes([9]) * 32)
    with pytest.raises(QuorumError):
        decide([answer(0, 5), answer(3, 5, key=KEYS[0]), answer(1, 100), answer(2, 5, key=outsider)], powers, 7)
    # a key that signed two different answers counts for neither
    with pytest.raises(QuorumError):
        decide([answer(0, 5), answer(0, 100), answer(1, 5), answer(2, 100)], powers, 7)
    # an answer for another height, or one with a problem, counts for nothing
    late = answer(1, 100, height=8)
    broken = NodeAnswer("http://node2", 7, balance_body(100), 100, None, "its attestation does not verify")
    with pytest.raises(QuorumError):
        decide([answer(0, 100), late, broken], powers, 7)


# --------------------------------------------------------------------------- on a live devnet


def start_liar(net, i: int, extra: int) -> subprocess.Popen:
    """Validator ``i``'s own node, lying by ``extra`` base units about every balance (its honest process stopped)."""
    net.stop(i)
    out = open(net.specs[i].home / "liar.out", "ab")  # noqa: SIM115 (the process keeps it open)
    proc = subprocess.Popen([sys.executable, "-m", "devnet.byzantine", "--home", str(net.specs[i].home),
                             "--lie-balances", str(extra)], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, net.log_tail(i)
        try:
            if httpx.get(net.url(i) + "/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(capsys, net, wallet: str, *argv: str, nodes=(0, 1, 2, 3)) -> tuple[int, dict]:
    capsys.readouterr()
    node_args = [a for i in nodes for a in ("--node", net.url(i))]
    code = cli.main(["--wallet", wallet, *node_args, "--json", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.processes
def test_lying_validators_are_outvoted_or_refused(tmp_path, capsys):
    liars: list[subprocess.Popen] = []
    with running_network(tmp_path / "net", overrides={"log_level": "INFO"}) as net:
        try:
            net.wait_height(2)
            wallet = str(tmp_path / "faucet.json")
            create_keystore(wallet, net.wallets["faucet"], None, name="faucet")
            truth = httpx.get(net.url(0) + f"/v1/addresses/{encode_address(net.address('faucet'))}/balance").json()
            true_balance = truth["balance"]

            liars.append(start_liar(net, 3, 5_000))
            lie = httpx.get(net.url(3) + f"/v1/addresses/{truth['address']}/balance",
                            params={"attest": "true"}).json()
            assert lie["balance"] == true_balance + 5_000 and "attestation" in lie
            # one liar of four: the true balance, agreed by the three honest validators
            code, out = run(capsys, net, wallet, "balance")
            assert code == 0, out
            assert out["balance"]["base_units"] == true_balance
            assert out["trust"].startswith("agreed by 3 of 4") and out["verified_read"]["agreed_by"] == 3
            code, out = run(capsys, net, wallet, "utxos")
            assert code == 0, out
            assert out["total"]["base_units"] == true_balance and out["trust"].startswith("agreed by 3 of 4")
            capsys.readouterr()
            assert cli.main(["--wallet", wallet, *[a for i in range(4) for a in ("--node", net.url(i))],
                             "balance"]) == 0
            assert "agreed by 3 of 4" in capsys.readouterr().out
            # --trust-one (or one node) takes the liar's word, and says so
            code, out = run(capsys, net, wallet, "--trust-one", "balance", nodes=(3,))
            assert code == 0 and out["balance"]["base_units"] == true_balance + 5_000
            assert out["trust"].startswith("trusted one node") and out["verified_read"] is None

            # two liars (half the power) telling different lies: the honest half is the only answer over 1/3
            liars.append(start_liar(net, 2, 7_000))
            code, out = run(capsys, net, wallet, "balance")
            assert code == 0, out
            assert out["balance"]["base_units"] == true_balance and out["trust"].startswith("agreed by 2 of 4")

            # two liars telling the same lie: two answers each over 1/3, so more than 1/3 lies: refused
            stop_process(liars.pop())
            liars.append(start_liar(net, 2, 5_000))
            code, out = run(capsys, net, wallet, "balance")
            assert code == cli.EXIT_UNVERIFIED, out
            assert out["error"]["code"] == NO_QUORUM
            said = {entry["node"]: entry["answer"] for entry in out["error"]["said"]}
            assert said[net.url(3)] == said[net.url(2)] == true_balance + 5_000
            assert said[net.url(0)] == said[net.url(1)] == true_balance
        finally:
            for proc in liars:
                stop_process(proc)
