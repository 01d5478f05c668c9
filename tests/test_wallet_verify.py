"""Verified confirmations against a fake node that can lie.

The fake node (an ``httpx.MockTransport``) keeps a tiny chain in memory and
produces real artefacts: headers, merkle proofs and commit certificates signed
by the genesis validators' keys.  Honest, it must be believed; lying in any
one of the ways below, it must be reported (exit code 4) and not believed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import parse_qs

import httpx
import pytest

from genesis.build import make_devnet_genesis
from genesis.document import genesis_hash, genesis_to_json, validator_set_of
from node.api.views import block_json, tx_json, utxo_json
from node.consensus.certificate import build_commit
from node.consensus.messages import VoteType, sign_vote
from node.crypto import address_hash, decode_address, derive_public_key, encode_address, sha256, verify_signature
from node.ledger.state import UtxoEntry
from node.types.block import Block, Header, compute_tx_root
from node.types.commit import Commit, CommitSig, commit_hash
from node.types.hashes import ZERO_HASH
from node.types.reconfig import EMPTY_INPUTS_HASH
from node.types.transaction import COIN, ZERO_SIGNATURE, OutPoint, Transaction, TxInput, TxOutput, signing_digest
from wallet import cli
from wallet.keystore import create_keystore, load_keystore
from wallet.trust import chain_file
from wallet.verify import VerificationError, verify_tx_inclusion

NODE = "http://fake-node"


def error(status: int, code: str, message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message or code}})


class FakeNode:
    """Just enough of the REST API for the wallet, over a chain it builds and signs itself."""

    def __init__(self, signers: int = 3, chain_id: str = "unit"):
        self.genesis, self.validator_keys, self.wallet_keys = make_devnet_genesis(
            4, chain_id=chain_id, seed=b"fake-node", genesis_time_ms=1_700_000_000_000)
        self.chain_id = chain_id
        self.validators = validator_set_of(self.genesis)
        self.signers = signers
        self.utxos: dict[OutPoint, UtxoEntry] = {}
        for i, a in enumerate(self.genesis.allocations):
            self.utxos[OutPoint(sha256(b"genesis" + bytes([i])), 0)] = UtxoEntry(a.address, a.amount, 0)
        self.blocks: list[tuple[Block, Commit]] = []
        self.where: dict[bytes, tuple[int, int]] = {}
        self.pending: dict[bytes, Transaction] = {}
        self.hold = False
        """When set, submitted transactions stay pending instead of being committed."""
        self.tamper = None
        """``tamper(node, path, answer) -> answer``: how this node lies."""
        self.requests: list[httpx.Request] = []

    # ----------------------------------------------------------------- chain

    def filler(self, height: int, i: int) -> Transaction:
        pub = derive_public_key(self.wallet_keys["bob"])
        return Transaction((TxInput(OutPoint(sha256(b"filler%d/%d" % (height, i)), 0), pub, ZERO_SIGNATURE),),
                           (TxOutput(bytes(20), 1 + i),))

    def make_block(self, txs: list[Transaction], keys: dict[str, bytes] | None = None,
                   validators_hash: bytes | None = None, height: int | None = None) -> tuple[Block, Commit]:
        height = height or len(self.blocks) + 1
        prev_block, prev_commit = self.blocks[height - 2] if height > 1 else (None, None)
        body = [self.filler(height, 0), self.filler(height, 1), *txs, self.filler(height, 2)]
        header = Header(self.chain_id, height, self.genesis.genesis_time_ms + height * 1000,
                        prev_block.hash if prev_block else ZERO_HASH, compute_tx_root(body),
                        sha256(b"app%d" % height), self.validators.validators[0].address,
                        commit_hash(prev_commit) if prev_commit else ZERO_HASH,
                        validators_hash or self.validators.hash, self.validators.hash, EMPTY_INPUTS_HASH,
                        sha256(b"reconfig%d" % height))
        block = Block(header, tuple(body), prev_commit)
        keys = keys or self.validator_keys
        votes = [sign_vote(self.chain_id, k, address_hash(derive_public_key(k)), VoteType.PRECOMMIT, height, 0,
                           block.hash, header.time_ms + 500) for k in list(keys.values())[:self.signers]]
        return block, build_commit(height, 0, block.hash, votes)

    def apply(self, tx: Transaction) -> None:
        block, commit = self.make_block([tx])
        self.blocks.append((block, commit))
        for i, t in enumerate(block.txs):
            self.where[t.txid] = (block.height, i)
        for txin in tx.inputs:
            del self.utxos[txin.prev]
        for i, out in enumerate(tx.outputs):
            self.utxos[OutPoint(tx.txid, i)] = UtxoEntry(out.address, out.amount, block.height)

    def validate(self, tx: Transaction) -> str | None:
        digest = signing_digest(tx, self.chain_id)
        total_in = 0
        for txin in tx.inputs:
            entry = self.utxos.get(txin.prev)
            if entry is None:
                return "bad-txns-inputs-missingorspent"
            if address_hash(txin.public_key) != entry.address:
                return "bad-txns-pubkey-mismatch"
            if not verify_signature(txin.public_key, digest, txin.signature):
                return "bad-txns-sig"
            total_in += entry.amount
        if total_in < sum(o.amount for o in tx.outputs):
            return "bad-txns-in-belowout"
        return None

    # ----------------------------------------------------------------- REST

    @property
    def height(self) -> int:
        return len(self.blocks)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if path == "/v1/genesis":
            return httpx.Response(200, json=self.lie(path, {"genesis_hash": genesis_hash(self.genesis).hex(),
                                                            "genesis": genesis_to_json(self.genesis)}))
        if path == "/v1/validators/changes":  # the set never changes here: genesis only
            return httpx.Response(200, json=self.lie(path, {"tip": self.height, "changes": [
                {"height": 1, "validators_hash": self.validators.hash.hex()}]}))
        if path == "/v1/status":
            return httpx.Response(200, json=self.lie(path, {"chain_id": self.genesis.chain_id, "height": self.height,
                                                            "genesis_hash": genesis_hash(self.genesis).hex()}))
        if m := re.fullmatch(r"/v1/addresses/(\w+)/(utxos|balance|txs)", path):
            account = decode_address(m.group(1))
            mine = [(op, e) for op, e in self.utxos.items() if e.address == account]
            if m.group(2) == "utxos":
                return httpx.Response(200, json={"address": m.group(1), "height": self.height, "next": None,
                                                 "utxos": [utxo_json(op, e) for op, e in mine]})
            if m.group(2) == "balance":
                return httpx.Response(200, json={"address": m.group(1), "height": self.height,
                                                 "balance": sum(e.amount for _, e in mine)})
            return httpx.Response(200, json={"address": m.group(1), "height": self.height, "txs": [], "next": None})
        if path == "/v1/txs" and request.method == "POST":
            tx = Transaction.decode(bytes.fromhex(json.loads(request.content)["tx"]))
            problem = self.validate(tx)
            if problem:
                return error(422, problem)
            if self.hold:
                self.pending[tx.txid] = tx
                return httpx.Response(202, json={"txid": tx.txid.hex(), "status": "pending"})
            self.apply(tx)
            if query.get("wait") != "commit":
                return httpx.Response(202, json={"txid": tx.txid.hex(), "status": "pending"})
            height, index = self.where[tx.txid]
            return httpx.Response(200, json={"txid": tx.txid.hex(), "status": "committed", "height": height,
                                             "index": index, "block_hash": self.blocks[height - 1][0].hash.hex()})
        if m := re.fullmatch(r"/v1/txs/([0-9a-f]{64})", path):
            txid = bytes.fromhex(m.group(1))
            if txid in self.pending:
                return httpx.Response(200, json={"status": "pending", "txid": m.group(1),
                                                 "tx": tx_json(self.pending[txid])})
            if txid not in self.where:
                return error(404, "tx-not-found")
            height, index = self.where[txid]
            block = self.blocks[height - 1][0]
            return httpx.Response(200, json=self.lie(path, {
                "status": "committed", "txid": m.group(1), "height": height, "index": index,
                "block_hash": block.hash.hex(), "tx_root": block.header.tx_root.hex(),
                "wtxid": block.txs[index].wtxid.hex(), "proof": block.proof(index).to_json(),
                "tx": tx_json(block.txs[index])}))
        if m := re.fullmatch(r"/v1/blocks/(\d+)", path):
            height = int(m.group(1))
            if not 1 <= height <= self.height:
                return error(404, "block-not-found")
            block, commit = self.blocks[height - 1]
            return httpx.Response(200, json=self.lie(path, block_json(block, commit)))
        return error(404, "not-found")

    def lie(self, path: str, answer: dict) -> dict:
        return self.tamper(self, path, answer) if self.tamper else answer

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.answer)


@pytest.fixture
def node():
    return FakeNode()


@pytest.fixture
def faucet(tmp_path, node):
    return create_keystore(tmp_path / "faucet.json", node.wallet_keys["faucet"], None, name="faucet").path


def run(node: FakeNode, *argv: str) -> tuple[int, dict]:
    """Run the wallet CLI with --json against the fake node; return (exit code, parsed output)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["--node", NODE, "--json", *argv], transport=node.transport())
    return code, json.loads(out.getvalue())


def send_one(node: FakeNode, faucet, amount: str = "2.5") -> tuple[str, str]:
    to = encode_address(address_hash(derive_public_key(node.wallet_keys["alice"])))
    code, out = run(node, "--wallet", str(faucet), "send", to, amount, "--wait")
    assert code == 0, out
    return out["txid"], to


# --------------------------------------------------------------------------- honest node


def test_send_wait_verifies_and_pays_change(node, faucet):
    txid, to = send_one(node, faucet)
    block, _ = node.blocks[-1]
    tx = block.txs[node.where[bytes.fromhex(txid)][1]]
    faucet_addr = load_keystore(faucet).address
    assert [(encode_address(o.address), o.amount) for o in tx.outputs][0] == (to, 250_000_000)
    assert encode_address(tx.outputs[1].address) == faucet_addr  # change back to the sender
    assert node.utxos[OutPoint(bytes.fromhex(txid), 1)].amount == 1_000_000 * COIN - 250_000_000 - 10 * tx.size
    code, out = run(node, "--wallet", str(faucet), "tx", txid)
    assert code == 0
    assert out["verified"] is True and out["signed_power"] == 30 and out["total_power"] == 40
    assert "verified by 30 of 40 validators' voting power" in out["summary"]
    assert out["outputs"][0] == {"address": to, "amount": {"base_units": 250_000_000, "coins": "2.50000000"}}
    # the genesis was pinned on first use, in the wallet file, and cached beside it
    pin = load_keystore(faucet).trusted_genesis
    assert pin == {"chain_id": "unit", "genesis_hash": genesis_hash(node.genesis).hex()}
    assert json.loads(chain_file(faucet).read_text())["last_height"] == 1


def test_human_output_says_verified(node, faucet, capsys):
    txid, _ = send_one(node, faucet)
    assert cli.main(["--node", NODE, "--wallet", str(faucet), "tx", txid], transport=node.transport()) == 0
    out = capsys.readouterr().out
    assert "committed in block 1 at index 2" in out
    assert "verified by 30 of 40 validators' voting power (3 of 4 validators signed block 1)" in out


def test_reads_ask_for_the_height_already_seen(node, faucet):
    send_one(node, faucet)
    node.requests.clear()
    code, _ = run(node, "--wallet", str(faucet), "balance")
    assert code == 0
    assert [r.url.path for r in node.requests] == ["/v1/status", f"/v1/addresses/{load_keystore(faucet).address}"
                                                                 "/balance"]  # its genesis checked first, once
    assert [r.url.params.get("min_height") for r in node.requests] == [None, "1"]


def test_insufficient_funds_names_the_shortfall(node, faucet, tmp_path):
    alice = create_keystore(tmp_path / "alice.json", node.wallet_keys["alice"], None).path
    code, out = run(node, "--wallet", str(alice), "send", load_keystore(faucet).address, "1000", "--fee", "0.5")
    assert code == cli.EXIT_FAILED
    assert out["error"]["code"] == "insufficient-funds"
    assert out["error"]["shortfall"] == COIN // 2
    assert "short by 0.5 coins (50000000 base units)" in out["error"]["message"]


def test_pending_and_unknown(node, faucet):
    node.hold = True
    to = encode_address(address_hash(derive_public_key(node.wallet_keys["bob"])))
    code, out = run(node, "--wallet", str(faucet), "send", to, "1")
    assert code == 0 and out["status"] == "pending"
    code, out = run(node, "--wallet", str(faucet), "tx", out["txid"])
    assert code == 0 and out["status"] == "pending"
    code, out = run(node, "--wallet", str(faucet), "tx", "ab" * 32)
    assert code == cli.EXIT_FAILED and out["status"] == "unknown"


def test_node_rejection_is_reported(node, faucet):
    to = encode_address(address_hash(derive_public_key(node.wallet_keys["bob"])))
    node.chain_id = "other-chain"  # the node checks signatures for another chain
    code, out = run(node, "--wallet", str(faucet), "send", to, "1", "--wait")
    assert code == cli.EXIT_FAILED and out["error"]["code"] == "bad-txns-sig"


# --------------------------------------------------------------------------- lying node


def reheader(answer: dict, **changes) -> tuple[dict, Header]:
    header = dataclasses.replace(Header.decode(bytes.fromhex(answer["header_hex"])), **changes)
    return {**answer, "header_hex": header.encode().hex(), "hash": header.hash.hex()}, header


def forge_header(node, path, answer):
    if path.startswith("/v1/blocks/"):
        return reheader(answer, app_hash=b"\x66" * 32)[0]
    return answer


def forge_consistently(node, path, answer):
    """A forged header whose hash the node repeats everywhere, the old signatures moved onto it."""
    if path.startswith("/v1/blocks/"):
        answer, header = reheader(answer, app_hash=b"\x66" * 32)
        commit = Commit.decode(bytes.fromhex(answer["commit"]["hex"]))
        forged = dataclasses.replace(commit, block_hash=header.hash)
        return {**answer, "commit": {**answer["commit"], "hex": forged.encode().hex(),
                                     "block_hash": header.hash.hex()}}
    if path.startswith("/v1/txs/"):
        block = node.blocks[answer["height"] - 1][0]
        header = dataclasses.replace(block.header, app_hash=b"\x66" * 32)
        return {**answer, "block_hash": header.hash.hex()}
    return answer


def bad_sibling(node, path, answer):
    if path.startswith("/v1/txs/"):
        proof = answer["proof"]
        siblings = [dict(s) for s in proof["siblings"]]
        siblings[0]["hash"] = "00" * 32
        return {**answer, "proof": {**proof, "siblings": siblings}}
    return answer


def other_leaf_proof(node, path, answer):
    """The proof of a different transaction of the block, passed off as this one's."""
    if path.startswith("/v1/txs/"):
        block = node.blocks[answer["height"] - 1][0]
        return {**answer, "index": 0, "proof": block.proof(0).to_json()}
    return answer


def bad_signature(node, path, answer):
    if path.startswith("/v1/blocks/"):
        commit = Commit.decode(bytes.fromhex(answer["commit"]["hex"]))
        first = commit.signatures[0]
        broken = CommitSig(first.validator, first.time_ms, first.signature[:32] + bytes(31) + b"\x01")
        forged = dataclasses.replace(commit, signatures=(broken, *commit.signatures[1:]))
        return {**answer, "commit": {**answer["commit"], "hex": forged.encode().hex()}}
    return answer


def too_few_signers(node, path, answer):
    if path.startswith("/v1/blocks/"):
        commit = Commit.decode(bytes.fromhex(answer["commit"]["hex"]))
        forged = dataclasses.replace(commit, signatures=commit.signatures[:2])
        return {**answer, "commit": {**answer["commit"], "hex": forged.encode().hex()}}
    return answer


def no_certificate(node, path, answer):
    return {**answer, "commit": None} if path.startswith("/v1/blocks/") else answer


def swapped_tx_bytes(node, path, answer):
    if path.startswith("/v1/txs/"):
        block = node.blocks[answer["height"] - 1][0]
        return {**answer, "tx": tx_json(block.txs[0])}
    return answer


def resigned_tx_bytes(node, path, answer):
    """The asked transaction (same txid) with other signature bytes than the block holds."""
    if path.startswith("/v1/txs/"):
        tx = Transaction.decode(bytes.fromhex(answer["tx"]["hex"]))
        txin = tx.inputs[0]
        other = dataclasses.replace(txin, signature=txin.signature[:40] + bytes([txin.signature[40] ^ 1])
                                    + txin.signature[41:])
        return {**answer, "tx": tx_json(Transaction((other, *tx.inputs[1:]), tx.outputs))}
    return answer


def txid_proof(node, path, answer):
    """A proof over the txid (which leaves the signatures out) instead of the served bytes' wtxid."""
    if path.startswith("/v1/txs/"):
        from node.types.merkle import merkle_proof
        block = node.blocks[answer["height"] - 1][0]
        return {**answer, "proof": merkle_proof(block.txids, answer["index"]).to_json()}
    return answer


def no_tx_bytes(node, path, answer):
    return {**answer, "tx": {**answer["tx"], "hex": None}} if path.startswith("/v1/txs/") else answer


@pytest.mark.parametrize("tamper, code", [
    (forge_header, "forged-block"),
    (forge_consistently, "bad-certificate"),
    (bad_sibling, "bad-proof"),
    (other_leaf_proof, "bad-proof"),
    (bad_signature, "bad-certificate"),
    (too_few_signers, "bad-certificate"),
    (no_certificate, "no-certificate"),
    (swapped_tx_bytes, "forged-transaction"),
    (resigned_tx_bytes, "bad-proof"),
    (txid_proof, "bad-proof"),
    (no_tx_bytes, "malformed-answer"),
])
def test_lies_are_refused(node, faucet, tamper, code, capsys):
    txid, _ = send_one(node, faucet)
    node = node
    node.tamper = tamper
    result, out = run(node, "--wallet", str(faucet), "tx", txid)
    assert result == cli.EXIT_UNVERIFIED
    assert out["error"]["code"] == code
    assert "NOT VERIFIED" in out["error"]["message"]
    # and the same lie during `send --wait`
    to = encode_address(address_hash(derive_public_key(node.wallet_keys["bob"])))
    result, out = run(node, "--wallet", str(faucet), "send", to, "1", "--wait")
    assert result == cli.EXIT_UNVERIFIED and out["error"]["code"] == code


def test_human_message_for_a_lie(node, faucet, capsys):
    txid, _ = send_one(node, faucet)
    node.tamper = bad_signature
    assert cli.main(["--node", NODE, "--wallet", str(faucet), "tx", txid], transport=node.transport()) == 4
    err = capsys.readouterr().err
    assert "NOT VERIFIED" in err and "bad-signature" in err


def test_certificate_from_other_validators_is_refused(node, faucet):
    """A whole fake chain signed by keys that are not in the pinned genesis."""
    txid, _ = send_one(node, faucet)
    impostors = {f"x{i}": sha256(b"impostor%d" % i) for i in range(4)}
    from node.types.validators import Validator, ValidatorSet

    fake_set = ValidatorSet(Validator(n, derive_public_key(k), 10) for n, k in impostors.items())
    node.blocks[-1] = node.make_block([node.blocks[-1][0].txs[2]], impostors, height=1)
    code, out = run(node, "--wallet", str(faucet), "tx", txid)
    assert code == 4 and out["error"]["code"] == "bad-certificate"  # impostors' hash differs from the pin's
    node.blocks[-1] = node.make_block([node.blocks[-1][0].txs[2]], impostors, validators_hash=fake_set.hash,
                                      height=1)
    code, out = run(node, "--wallet", str(faucet), "tx", txid)
    assert code == 4 and out["error"]["code"] == "unknown-validators"


def test_genesis_swap_is_refused(node, faucet):
    send_one(node, faucet)  # pins the real genesis
    chain_file(faucet).unlink()  # the cache is gone: the wallet has to fetch it again
    other = FakeNode(chain_id="unit")
    other.genesis = make_devnet_genesis(4, chain_id="unit", seed=b"another", genesis_time_ms=1)[0]
    code, out = run(other, "--wallet", str(faucet), "tx", "ab" * 32)
    assert code == 4 and out["error"]["code"] == "wrong-genesis"  # not "unknown": the node runs another chain
    to = encode_address(address_hash(derive_public_key(node.wallet_keys["bob"])))
    for argv in (["send", to, "1"], ["balance"], ["utxos"], ["history"], ["trust"]):
        code, out = run(other, "--wallet", str(faucet), *argv)
        assert code == 4 and out["error"]["code"] == "wrong-genesis", argv
        assert "trust --reset" in out["error"]["message"]
        assert out["error"]["node_genesis_hash"] == genesis_hash(other.genesis).hex()
        assert out["error"]["genesis_hash"] == genesis_hash(node.genesis).hex()
    # a node whose status claims the pinned genesis but which serves another document is refused too
    other.tamper = lambda _node, path, answer: (
        {**answer, "genesis_hash": genesis_hash(node.genesis).hex()} if path == "/v1/status" else answer)
    code, out = run(other, "--wallet", str(faucet), "send", to, "1")
    assert code == 4 and out["error"]["code"] == "genesis-mismatch"
    assert "trust --reset" in out["error"]["message"]


def test_genesis_is_checked_once_per_node_and_session(node, faucet):
    """A node without a genesis hash in its status is judged by the genesis document it serves; a fallback node
    is checked before it is used too."""
    send_one(node, faucet)
    node.requests.clear()
    node.tamper = lambda _node, path, answer: (
        {k: v for k, v in answer.items() if k != "genesis_hash"} if path == "/v1/status" else answer)
    code, out = run(node, "--wallet", str(faucet), "history")
    assert code == 0
    assert [r.url.path for r in node.requests].count("/v1/genesis") == 1
    other = FakeNode(chain_id="unit")
    other.genesis = make_devnet_genesis(4, chain_id="unit", seed=b"another", genesis_time_ms=1)[0]
    other.tamper = node.tamper
    code, out = run(other, "--wallet", str(faucet), "balance")
    assert code == 4 and out["error"]["code"] == "wrong-genesis"


def test_genesis_whose_hash_is_misstated_is_refused(node, tmp_path):
    fresh = create_keystore(tmp_path / "fresh.json", node.wallet_keys["bob"], None).path
    node.tamper = lambda _node, path, answer: {**answer, "genesis_hash": "00" * 32} if path == "/v1/genesis" else answer
    code, out = run(node, "--wallet", str(fresh), "trust")
    assert code == 4 and out["error"]["code"] == "genesis-mismatch"
    assert load_keystore(fresh).trusted_genesis is None  # nothing pinned from a lying node


def test_trust_shows_and_resets_the_pin(node, faucet):
    code, out = run(node, "--wallet", str(faucet), "trust")
    assert code == 0 and out["genesis_hash"] == genesis_hash(node.genesis).hex() and out["total_power"] == 40
    assert out["node"] == NODE  # compared with the node's
    other = FakeNode(chain_id="unit2")
    code, out = run(other, "--wallet", str(faucet), "trust", "--reset")
    assert code == 0 and load_keystore(faucet).trusted_genesis["chain_id"] == "unit2"


def test_verify_function_directly(node, faucet):
    txid, _ = send_one(node, faucet)
    raw = bytes.fromhex(txid)
    height, index = node.where[raw]
    block, commit = node.blocks[height - 1]
    tx_answer = node.answer(httpx.Request("GET", f"{NODE}/v1/txs/{txid}")).json()
    block_answer = block_json(block, commit)
    verified = verify_tx_inclusion("unit", node.validators, raw, tx_answer, block_answer)
    assert verified.index == index and verified.block.signers == 3 and verified.tx.txid == raw
    with pytest.raises(VerificationError) as info:
        verify_tx_inclusion("another-chain", node.validators, raw, tx_answer, block_answer)
    assert info.value.code == "wrong-chain"
    with pytest.raises(VerificationError) as info:
        verify_tx_inclusion("unit", node.validators, raw, tx_answer, {**block_answer, "header_hex": "00"})
    assert info.value.code == "malformed-block"
    with pytest.raises(VerificationError) as info:
        verify_tx_inclusion("unit", node.validators, bytes(32), {**tx_answer, "txid": "00" * 32}, block_answer)
    assert info.value.code == "forged-transaction"  # the proven bytes are of another transaction
