"""The transaction rules: when a transaction is valid, and what applying it does to the UTXO set.

Cheap checks run before expensive ones: structure, widths, amounts and key
encodings first (no state), then lookups and sums, signatures last.  Every
rejection is a ``TxError`` with a stable code from ``node.ledger.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, address_hash
from node.ledger.errors import (
    TX_BAD_PUBKEY,
    TX_IN_BELOWOUT,
    TX_INPUTS_DUPLICATE,
    TX_INPUTS_MISSINGORSPENT,
    TX_MALFORMED,
    TX_OVERSIZE,
    TX_PUBKEY_MISMATCH,
    TX_TXOUTTOTAL_TOOLARGE,
    TX_VIN_EMPTY,
    TX_VOUT_EMPTY,
    TX_VOUT_NEGATIVE,
    TX_VOUT_TOOLARGE,
    TX_VOUT_ZERO,
    TX_WRONG_CHAIN,
    TxError,
)
from node.ledger.pubkey import is_valid_public_key
from node.ledger.signatures import SignatureCache, verify_transaction_signatures
from node.ledger.state import OverlayState, StateView, UtxoEntry
from node.types.transaction import (
    MAX_SUPPLY,
    MAX_TX_BYTES,
    MAX_TX_INPUTS,
    MAX_TX_OUTPUTS,
    TXID_SIZE,
    OutPoint,
    Transaction,
)

MAX_U32: int = 2**32 - 1


def check_chain_id(stated_chain_id: str, chain_id: str) -> None:
    """Refuse a submission that names another chain (``bad-txns-wrong-chain``).

    A signature made for another chain cannot be recognised as such, only as
    invalid here, so this applies where a chain id is stated explicitly.
    """
    if stated_chain_id != chain_id:
        raise TxError(TX_WRONG_CHAIN, f"transaction is for chain {stated_chain_id!r}, this node runs {chain_id!r}")


_STATELESS_MEMO = "_stateless_out_total"
"""Where a transaction object remembers that it passed ``check_transaction_stateless`` (and its output total)."""


def check_transaction_stateless(tx: Transaction) -> int:
    """Rules that need no state: structure, widths, amounts, output sum, size, duplicate inputs, key encodings.

    Returns the output total, so that it is summed once.  The verdict depends
    on the (immutable) transaction alone, so a pass is remembered on the
    object: the mempool, the proposer and block execution check one object
    once.  Failures are not remembered; they raise each time.
    """
    memo = tx.__dict__.get(_STATELESS_MEMO)
    if memo is not None:
        return memo
    total = _check_stateless(tx)
    tx.__dict__[_STATELESS_MEMO] = total
    return total


def _check_stateless(tx: Transaction) -> int:
    inputs, outputs = tx.inputs, tx.outputs
    if not inputs:
        raise TxError(TX_VIN_EMPTY, "transaction has no inputs; spend at least one output")
    if not outputs:
        raise TxError(TX_VOUT_EMPTY, "transaction has no outputs; pay at least one address")
    if len(inputs) > MAX_TX_INPUTS or len(outputs) > MAX_TX_OUTPUTS:
        raise TxError(TX_OVERSIZE, f"at most {MAX_TX_INPUTS} inputs and {MAX_TX_OUTPUTS} outputs; split the transfer")
    for i, txin in enumerate(inputs):
        prev = txin.prev
        if (len(prev.txid) != TXID_SIZE or not isinstance(prev.index, int) or not 0 <= prev.index <= MAX_U32
                or len(txin.public_key) != PUBLIC_KEY_SIZE or len(txin.signature) != SIGNATURE_SIZE):
            raise TxError(TX_MALFORMED, f"input {i}: txid must be 32 bytes, index a u32, key 33 bytes, signature 64")
    total = 0
    for i, out in enumerate(outputs):
        amount = out.amount
        if len(out.address) != ADDRESS_SIZE or not isinstance(amount, int) or isinstance(amount, bool):
            raise TxError(TX_MALFORMED, f"output {i}: address must be 20 bytes and amount an integer")
        if amount <= 0:
            if amount == 0:
                raise TxError(TX_VOUT_ZERO, f"output {i} pays 0; every output must carry at least 1 base unit")
            raise TxError(TX_VOUT_NEGATIVE, f"output {i} has a negative amount")
        if amount > MAX_SUPPLY:
            raise TxError(TX_VOUT_TOOLARGE, f"output {i} pays {amount}, above MAX_SUPPLY {MAX_SUPPLY}")
        total += amount
        if total > MAX_SUPPLY:
            raise TxError(TX_TXOUTTOTAL_TOOLARGE, f"outputs add up to more than MAX_SUPPLY {MAX_SUPPLY}")
    size = tx.size
    if size > MAX_TX_BYTES:
        raise TxError(TX_OVERSIZE, f"transaction is {size} bytes, limit {MAX_TX_BYTES}; split it")
    if len(inputs) > 1 and len({txin.prev for txin in inputs}) != len(inputs):
        raise TxError(TX_INPUTS_DUPLICATE, "the same output appears twice among the inputs; spend it once")
    seen_keys: set[bytes] = set()
    for i, txin in enumerate(inputs):
        key = txin.public_key
        if key in seen_keys:
            continue
        if not is_valid_public_key(key):
            raise TxError(TX_BAD_PUBKEY, f"input {i}: public key is not a compressed secp256k1 point")
        seen_keys.add(key)
    return total


def validate_inputs(
    tx: Transaction,
    out_total: int,
    state: StateView,
    chain_id: str,
    sig_cache: SignatureCache | None,
) -> tuple[int, list[UtxoEntry]]:
    """The rules that need state, for a ``tx`` that passed ``check_transaction_stateless`` (which gave
    ``out_total``): inputs exist and belong to the keys, sums balance, then signatures.

    Returns (fee, the spent entries in input order).
    """
    in_total = 0
    entries: list[UtxoEntry] = []
    get_utxo = state.get_utxo
    for i, txin in enumerate(tx.inputs):
        entry = get_utxo(txin.prev)
        if entry is None:
            raise TxError(TX_INPUTS_MISSINGORSPENT,
                          f"input {i} spends {txin.prev.txid.hex()}:{txin.prev.index}, which does not exist "
                          "or is already spent; refresh your unspent outputs")
        if address_hash(txin.public_key) != entry.address:
            raise TxError(TX_PUBKEY_MISMATCH,
                          f"input {i}: public key does not hash to the address of the output it spends; "
                          "use the owner's key")
        in_total += entry.amount
        entries.append(entry)
    if in_total < out_total:
        raise TxError(TX_IN_BELOWOUT, f"inputs add up to {in_total}, outputs to {out_total}; "
                                      "outputs may not exceed inputs")
    if sig_cache is not None:
        sig_cache.verify_transaction(tx, chain_id)
    else:
        verify_transaction_signatures(tx, chain_id)
    return in_total - out_total, entries


def validate_transaction(
    tx: Transaction,
    state: StateView,
    chain_id: str,
    sig_cache: SignatureCache | None = None,
) -> int:
    """Check ``tx`` against ``state`` and return its fee (inputs - outputs); raise ``TxError`` if invalid."""
    out_total = check_transaction_stateless(tx)
    fee, _entries = validate_inputs(tx, out_total, state, chain_id, sig_cache)
    return fee


def apply_transaction(state: OverlayState, tx: Transaction, height: int,
                      spent_entries: Sequence[UtxoEntry] | None = None) -> None:
    """Spend ``tx``'s inputs and create its outputs in ``state`` (``tx`` must be valid there).

    ``spent_entries`` are the inputs' entries as validation read them from
    ``state``, if at hand (saves a lookup per input).
    """
    if spent_entries is not None:
        for txin, entry in zip(tx.inputs, spent_entries, strict=True):
            state.spend(txin.prev, entry)
    else:
        for txin in tx.inputs:
            state.spend(txin.prev)
    txid = tx.txid
    for index, out in enumerate(tx.outputs):
        state.create(OutPoint(txid, index), UtxoEntry(out.address, out.amount, height))
