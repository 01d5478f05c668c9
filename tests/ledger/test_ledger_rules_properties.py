"""Random valid and invalid transactions against the rules (hypothesis).

A valid transfer is accepted with fee = inputs - outputs; each kind of
mutation is rejected with its own code, which also pins the order of the
checks (cheap structure first, state next, signatures last).  Random blocks
keep the supply constant and their incremental app hash equal to a hash of
the whole UTXO set computed from scratch.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_helpers import CHAIN, PROPOSER, addr, allocations, build_block, commit, gen_op, key, raw_block, transfer
from node import crypto
from node.ledger import errors as E
from node.ledger.errors import BlockError, TxError
from node.ledger.memory import MemoryState
from node.ledger.muhash import MuHash
from node.ledger.rules import BlockBuilder, SignatureCache, execute_block, is_valid_public_key, validate_transaction
from node.ledger.state import OverlayState, UtxoEntry, iter_elements
from node.types.transaction import MAX_SUPPLY, OutPoint, Transaction, TxOutput

KEYS = 6
AMOUNT = 1_000_000
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh_state() -> MemoryState:
    s = MemoryState()
    s.initialize_genesis(CHAIN, b"G" * 32, allocations(KEYS, AMOUNT))
    return s


STATE = fresh_state()  # never written by the transaction tests


@st.composite
def valid_transfers(draw):
    owners = draw(st.lists(st.integers(0, KEYS - 1), min_size=1, max_size=3, unique=True))
    total_in = AMOUNT * len(owners)
    n_out = draw(st.integers(1, 3))
    budget = draw(st.integers(n_out, total_in))
    cuts = sorted(draw(st.lists(st.integers(1, budget - 1), min_size=n_out - 1, max_size=n_out - 1, unique=True))) \
        if n_out > 1 and budget > n_out else []
    if len(cuts) != n_out - 1:
        amounts = [1] * (n_out - 1) + [budget - (n_out - 1)]
    else:
        bounds = [0] + cuts + [budget]
        amounts = [b - a for a, b in pairwise(bounds)]
    payees = draw(st.lists(st.integers(0, 50), min_size=n_out, max_size=n_out))
    outputs = [(addr(key(p)), a) for p, a in zip(payees, amounts, strict=True)]
    tx = transfer([(gen_op(o), key(o)) for o in owners], outputs)
    return tx, total_in - budget, owners, outputs


def replace_input(tx: Transaction, i: int, **changes) -> Transaction:
    inputs = list(tx.inputs)
    inputs[i] = dataclasses.replace(inputs[i], **changes)
    return Transaction(tuple(inputs), tx.outputs)


def mutate(kind: str, tx: Transaction, owners: list[int], outputs, data) -> Transaction:
    spends = [(gen_op(o), key(o)) for o in owners]
    i = data.draw(st.integers(0, len(tx.inputs) - 1))
    if kind == E.TX_VIN_EMPTY:
        return Transaction((), tx.outputs)
    if kind == E.TX_VOUT_EMPTY:
        return Transaction(tx.inputs, ())
    if kind == E.TX_VOUT_ZERO:
        return transfer(spends, outputs + [(addr(key(0)), 0)])
    if kind == E.TX_VOUT_TOOLARGE:
        return transfer(spends, [(addr(key(0)), data.draw(st.integers(MAX_SUPPLY + 1, 2**64 - 1)))])
    if kind == E.TX_TXOUTTOTAL_TOOLARGE:
        return transfer(spends, [(addr(key(0)), MAX_SUPPLY), (addr(key(1)), data.draw(st.integers(1, MAX_SUPPLY)))])
    if kind == E.TX_INPUTS_DUPLICATE:
        return transfer(spends + [spends[i]], outputs)
    if kind == E.TX_INPUTS_MISSINGORSPENT:
        missing = OutPoint(gen_op(0).txid, data.draw(st.integers(KEYS, 2**32 - 1)))
        return transfer(spends + [(missing, key(0))], outputs)
    if kind == E.TX_IN_BELOWOUT:
        extra = data.draw(st.integers(len(owners) * AMOUNT - sum(a for _, a in outputs) + 1, MAX_SUPPLY // 2))
        return transfer(spends, outputs + [(addr(key(0)), extra)])
    if kind == E.TX_SIG:
        how = data.draw(st.sampled_from(["flip", "other-chain", "body-changed"]))
        if how == "flip":
            sig = bytearray(tx.inputs[i].signature)
            sig[data.draw(st.integers(0, 63))] ^= 1 << data.draw(st.integers(0, 7))
            return replace_input(tx, i, signature=bytes(sig))
        if how == "other-chain":
            return transfer(spends, outputs, chain=CHAIN + "-2")
        # Lower one output after signing: sums still fine, the signed body is not this one.
        changed = list(tx.outputs)
        j = data.draw(st.integers(0, len(changed) - 1))
        if changed[j].amount > 1:
            changed[j] = TxOutput(changed[j].address, changed[j].amount - 1)
        else:
            changed[j] = TxOutput(addr(key(99)), 1)
        return Transaction(tx.inputs, tuple(changed))
    if kind == E.TX_PUBKEY_MISMATCH:
        stranger = crypto.derive_public_key(key(1000 + data.draw(st.integers(0, 5))))
        return replace_input(tx, i, public_key=stranger)
    if kind == E.TX_BAD_PUBKEY:
        # Every draw happens before the search, so a replay draws the same data (no os.urandom in the loop).
        prefix, seed = data.draw(st.sampled_from([2, 3])), data.draw(st.binary(min_size=8, max_size=8))
        for counter in range(10_000):  # about half of all x coordinates are off the curve
            candidate = bytes([prefix]) + crypto.sha256(seed + counter.to_bytes(4, "big"))
            if not crypto.is_valid_public_key(candidate):
                return replace_input(tx, i, public_key=candidate)
    raise AssertionError(kind)


MUTATIONS = [E.TX_VIN_EMPTY, E.TX_VOUT_EMPTY, E.TX_VOUT_ZERO, E.TX_VOUT_TOOLARGE, E.TX_TXOUTTOTAL_TOOLARGE,
             E.TX_INPUTS_DUPLICATE, E.TX_INPUTS_MISSINGORSPENT, E.TX_IN_BELOWOUT, E.TX_SIG, E.TX_PUBKEY_MISMATCH,
             E.TX_BAD_PUBKEY]


@SETTINGS
@given(valid_transfers())
def test_valid_transfers_are_accepted_with_their_fee(case):
    tx, fee, _owners, _outputs = case
    assert validate_transaction(tx, STATE, CHAIN) == fee
    cache = SignatureCache()
    assert validate_transaction(tx, STATE, CHAIN, cache) == fee
    assert validate_transaction(tx, STATE, CHAIN, cache) == fee
    assert (cache.misses, cache.hits) == (1, 1)
    # Round trip through the wire encoding changes nothing.
    assert validate_transaction(Transaction.decode(tx.encode()), STATE, CHAIN) == fee


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_transfers(), st.sampled_from(MUTATIONS), st.data())
def test_each_mutation_is_rejected_with_its_code(case, kind, data):
    tx, _fee, owners, outputs = case
    bad = mutate(kind, tx, owners, outputs, data)
    try:
        validate_transaction(bad, STATE, CHAIN)
    except TxError as exc:
        assert exc.code == kind, (kind, exc)
    else:
        raise AssertionError(f"mutation {kind} was accepted")
    # Through a signature cache warmed with the original, the answer is the same.
    cache = SignatureCache()
    validate_transaction(tx, STATE, CHAIN, cache)
    try:
        validate_transaction(bad, STATE, CHAIN, cache)
    except TxError as exc:
        assert exc.code == kind
    else:
        raise AssertionError(f"mutation {kind} was accepted through the cache")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=33, max_size=33), st.sampled_from([0, 2, 3, 4]))
def test_fast_point_check_agrees_with_crypto(raw, prefix):
    candidate = bytes([prefix]) + raw[1:] if prefix else raw
    assert is_valid_public_key(candidate) == crypto.is_valid_public_key(candidate)


def test_fast_point_check_edge_cases():
    p = crypto.P
    for x in (0, 1, 5, p - 1, p, p + 1, 2**256 - 1):
        for prefix in (2, 3):
            candidate = bytes([prefix]) + (x % 2**256).to_bytes(32, "big")
            assert is_valid_public_key(candidate) == crypto.is_valid_public_key(candidate)
    for i in range(20):
        pk = crypto.derive_public_key(key(i))
        assert is_valid_public_key(pk) and crypto.is_valid_public_key(pk)
    assert not is_valid_public_key(b"\x02" * 32) and not is_valid_public_key(b"\x02" * 34)


# ------------------------------------------------------------------ random blocks


@st.composite
def block_plans(draw):
    """A few blocks of random transfers that chain on each other's outputs."""
    return draw(st.lists(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 3), st.integers(0, 3)),
                                  min_size=0, max_size=5), min_size=1, max_size=3))


def owned_outputs(state: MemoryState) -> list[tuple[OutPoint, int, int]]:
    """(outpoint, amount, key number) of every spendable output, in a deterministic order."""
    by_addr = {addr(key(i)): i for i in range(12)}
    return sorted(((op, e.amount, by_addr[e.address]) for op, e in state.utxos.items() if e.address in by_addr),
                  key=lambda t: (t[0].txid, t[0].index))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_plans())
def test_random_blocks_keep_supply_and_match_a_from_scratch_hash(plan):
    state = fresh_state()
    supply = sum(e.amount for e in state.utxos.values())
    for block_txs in plan:
        overlay = OverlayState(state)
        txs = []
        for pick, n_out, fee in block_txs:
            spendable = [t for t in owned_outputs(state) if overlay.get_utxo(t[0]) is not None]
            spendable += [(op, e.amount, i) for op, e in overlay.created.items()
                          for i in range(12) if e.address == addr(key(i))]
            if not spendable:
                break
            op, amount, owner = spendable[pick % len(spendable)]
            if amount <= fee + n_out:
                continue
            share = (amount - fee) // n_out
            outs = [(addr(key((owner + j + 1) % 12)), share) for j in range(n_out - 1)]
            outs.append((addr(key(owner)), amount - fee - share * (n_out - 1)))
            tx = transfer([(op, key(owner))], outs)
            validate_transaction(tx, overlay, CHAIN)
            overlay.spend(op)
            for index, (a, v) in enumerate(outs):
                overlay.create(OutPoint(tx.txid, index), UtxoEntry(a, v, state.height + 1))
            txs.append(tx)
        block, result = build_block(state, txs)
        assert execute_block(block, state, CHAIN, 100, 10**6) == result
        commit(state, block, result)
        assert sum(e.amount for e in state.utxos.values()) == supply
        scratch = MuHash()
        scratch.add_many(iter_elements(state.utxos))
        assert scratch.digest() == state.app_hash
        fee_total = sum(result.tx_fees)
        assert result.fees == fee_total
        if fee_total:
            assert result.created[-1][1].address == PROPOSER and result.created[-1][1].amount == fee_total


def test_builder_skips_invalid_and_keeps_state():
    """A proposer adds candidates; a rejected one leaves the builder as it was."""
    state = fresh_state()
    builder = BlockBuilder(state, CHAIN, 1, PROPOSER, state.muhash_state, max_block_txs=2)
    a = transfer([(gen_op(0), key(0))], [(addr(key(1)), AMOUNT - 10)])
    dup = transfer([(gen_op(0), key(0))], [(addr(key(2)), AMOUNT - 20)])
    bad = transfer([(gen_op(1), key(1))], [(addr(key(2)), AMOUNT + 1)])
    b = transfer([(OutPoint(a.txid, 0), key(1))], [(addr(key(3)), AMOUNT - 30)])
    c = transfer([(gen_op(2), key(2))], [(addr(key(3)), 5)])
    assert builder.add(a) == 10
    for tx, code in ((dup, E.BLK_DOUBLE_SPEND), (bad, E.TX_IN_BELOWOUT)):
        try:
            builder.add(tx)
        except (TxError, BlockError) as exc:
            assert exc.code == code
        else:
            raise AssertionError("accepted")
    assert builder.add(b) == 20
    try:
        builder.add(c)
    except BlockError as exc:
        assert exc.code == E.BLK_LENGTH
    result = builder.finish()
    assert result.fees == 30 and len(result.tx_fees) == 2
    # The intermediate output (a:0) was created and spent inside the block: in neither list.
    assert OutPoint(a.txid, 0) not in dict(result.created) and OutPoint(a.txid, 0) not in dict(result.spent)
    assert state.get_utxo(gen_op(0)) is not None  # nothing written
    # The proposer's block validates on another node to the same result.
    block = raw_block(state, builder.txs)
    block = type(block)(dataclasses.replace(block.header, app_hash=result.app_hash), block.txs, None)
    assert execute_block(block, state, CHAIN, 2, 10**6) == result
