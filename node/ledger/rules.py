"""The state transition function: which transactions and blocks are valid, and what they do.

Plain functions over a ``StateView``, no I/O: the same genesis and the same
blocks give the same UTXO set and app hash on every node.  Cheap checks run
before expensive ones (structure, then lookups and sums, signatures last),
and every rejection is a ``TxError``/``BlockError`` with a stable code from
``node.ledger.errors``.

A block's life:

* a validator checks a proposal with ``execute_block`` (executes it against
  an overlay, writes nothing) and keeps the ``BlockResult``;
* once the block is decided, ``Store.commit_block(block, commit, result)``
  writes that result, so a block is executed once, not twice;
* a proposer uses ``BlockBuilder``: add candidate transactions one by one
  (invalid ones are refused without disturbing the others), ``finish()``
  gives the result whose ``app_hash`` and ``tx_root`` go in the header, and
  ``check_block_result`` confirms a block matches a result computed earlier;
* anyone holding a block's bytes (block sync, the store) can run
  ``check_block_body`` first, without state: it confirms the bytes are the
  ones the block's id commits to, so a result cached by id belongs to them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from node.crypto import ADDRESS_SIZE, P as _FIELD_P, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, address_hash, verify_signature
from node.ledger.blocks import ZERO_HASH, Block, commit_hash, compute_tx_root
from node.ledger.errors import (
    BLK_APPHASH,
    BLK_CHAIN_ID,
    BLK_COMMIT,
    BLK_DOUBLE_SPEND,
    BLK_HEIGHT,
    BLK_LENGTH,
    BLK_PREVHASH,
    BLK_RESULT,
    BLK_SIZE,
    BLK_TXROOT,
    GENESIS_ALLOCATION,
    TX_BAD_PUBKEY,
    TX_IN_BELOWOUT,
    TX_INPUTS_DUPLICATE,
    TX_INPUTS_MISSINGORSPENT,
    TX_MALFORMED,
    TX_OVERSIZE,
    TX_PUBKEY_MISMATCH,
    TX_SIG,
    TX_TXOUTTOTAL_TOOLARGE,
    TX_VIN_EMPTY,
    TX_VOUT_EMPTY,
    TX_VOUT_NEGATIVE,
    TX_VOUT_TOOLARGE,
    TX_VOUT_ZERO,
    TX_WRONG_CHAIN,
    BlockError,
    GenesisError,
    TxError,
)
from node.ledger.muhash import MuHash
from node.ledger.state import OverlayState, StateView, UtxoEntry, apply_block, genesis_txid, utxo_element
from node.ledger.transactions import (
    MAX_SUPPLY,
    MAX_TX_BYTES,
    MAX_TX_INPUTS,
    MAX_TX_OUTPUTS,
    TXID_SIZE,
    OutPoint,
    Transaction,
    fee_outpoint,
    signing_digest,
)

MAX_U32: int = 2**32 - 1

try:
    from gmpy2 import legendre as _legendre
    from gmpy2 import mpz as _mpz

    _P = _mpz(_FIELD_P)

    def is_valid_public_key(public_key: bytes) -> bool:
        """Same decision as ``node.crypto.is_valid_public_key``, ten times faster.

        For p = 3 mod 4, ``y = (x^3+7)^((p+1)/4)`` squares back to ``x^3+7``
        exactly when ``x^3+7`` is a square or zero mod p, i.e. when its
        Legendre symbol is not -1 (tests/ledger/test_rules.py checks the two
        agree).
        """
        if len(public_key) != PUBLIC_KEY_SIZE or public_key[0] not in (2, 3):
            return False
        x = _mpz.from_bytes(public_key[1:], "big")
        if x >= _P:
            return False
        return _legendre((x * x * x + 7) % _P, _P) != -1

except ImportError:  # pragma: no cover
    from node.crypto import is_valid_public_key


# --------------------------------------------------------------------------- transactions


def check_chain_id(stated_chain_id: str, chain_id: str) -> None:
    """Refuse a submission that names another chain (``bad-txns-wrong-chain``).

    A signature made for another chain cannot be recognised as such, only as
    invalid here, so this applies where a chain id is stated explicitly.
    """
    if stated_chain_id != chain_id:
        raise TxError(TX_WRONG_CHAIN, f"transaction is for chain {stated_chain_id!r}, this node runs {chain_id!r}")


def _check_stateless(tx: Transaction) -> int:
    """``check_transaction_stateless`` returning the output total (so it is summed once)."""
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


def check_transaction_stateless(tx: Transaction) -> None:
    """Rules that need no state: structure, widths, amounts, output sum, size, duplicate inputs, key encodings."""
    _check_stateless(tx)


def verify_transaction_signatures(
    tx: Transaction,
    chain_id: str,
    verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
) -> None:
    """Every input signs ``signing_digest(tx, chain_id)`` with its key (``bad-txns-sig``)."""
    digest = signing_digest(tx, chain_id)
    checked: set[tuple[bytes, bytes]] = set()
    for i, txin in enumerate(tx.inputs):
        pair = (txin.public_key, txin.signature)
        if pair in checked:
            continue
        if not verify(txin.public_key, digest, txin.signature):
            raise TxError(TX_SIG, f"input {i}: signature does not verify for chain {chain_id!r}; "
                                  "sign with the owner's key and this chain id")
        checked.add(pair)


class SignatureCache:
    """Transactions whose signatures already verified, so each is checked once per node.

    Keyed by (txid, SHA-256 of all signatures, chain id): the txid covers
    the public keys and the body, the second part the exact signatures, so
    a cached success can never vouch for different signatures.  Only
    successes are remembered.  Bounded LRU; safe to share between threads.
    """

    def __init__(self, max_entries: int = 200_000, verify: Callable[[bytes, bytes, bytes], bool] = verify_signature):
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._verify = verify
        self._ok: OrderedDict[tuple[bytes, bytes, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the cache."""
        self.misses = 0
        """Lookups that ran the signature checks."""

    @staticmethod
    def key(tx: Transaction, chain_id: str) -> tuple[bytes, bytes, str]:
        signatures = hashlib.sha256(b"".join(txin.signature for txin in tx.inputs)).digest()
        return (tx.txid, signatures, chain_id)

    def contains(self, tx: Transaction, chain_id: str) -> bool:
        """True if ``tx``'s signatures are known good for ``chain_id``."""
        with self._lock:
            return self.key(tx, chain_id) in self._ok

    def verify_transaction(self, tx: Transaction, chain_id: str) -> None:
        """Like ``verify_transaction_signatures``, but at most once per (tx, signatures, chain)."""
        key = self.key(tx, chain_id)
        with self._lock:
            if key in self._ok:
                self._ok.move_to_end(key)
                self.hits += 1
                return
            self.misses += 1
        verify_transaction_signatures(tx, chain_id, self._verify)
        with self._lock:
            self._ok[key] = None
            if len(self._ok) > self.max_entries:
                self._ok.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ok)


def _validate_stateful(
    tx: Transaction,
    out_total: int,
    state: StateView,
    chain_id: str,
    sig_cache: SignatureCache | None,
) -> tuple[int, list[UtxoEntry]]:
    """Inputs exist and belong to the keys, sums balance, then signatures; returns (fee, spent entries)."""
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
    out_total = _check_stateless(tx)
    fee, _entries = _validate_stateful(tx, out_total, state, chain_id, sig_cache)
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


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class BlockResult:
    """What executing a block does to the UTXO set, ready to be committed."""

    height: int
    """u64 height of the block executed."""
    proposer: bytes
    """20-byte address paid the fees."""
    tx_root: bytes
    """Merkle root of the executed transactions' wtxids (must equal the header's)."""
    spent: tuple[tuple[OutPoint, UtxoEntry], ...]
    """Outputs that existed before the block and are gone after it, in spending order."""
    created: tuple[tuple[OutPoint, UtxoEntry], ...]
    """Outputs that exist after the block and did not before (fee output last)."""
    fees: int
    """Sum of the transaction fees, paid to the proposer in one output."""
    tx_fees: tuple[int, ...]
    """Fee of each transaction, in block order."""
    tx_addresses: tuple[tuple[bytes, ...], ...]
    """Addresses each transaction touched (its inputs' owners and outputs), sorted, for the history index."""
    base_app_hash: bytes
    """App hash of the state the block was executed on."""
    app_hash: bytes
    """App hash after the block: MuHash digest of the new UTXO set."""
    muhash_state: bytes
    """Serialized MuHash after the block (normalized), for the next block."""


def block_tx_bytes(txs: Iterable[Transaction]) -> int:
    """What ``max_block_bytes`` limits: the encoded sizes of the transactions, summed."""
    return sum(tx.size for tx in txs)


class BlockBuilder:
    """Executes transactions one at a time on an overlay and produces a ``BlockResult``.

    ``add`` validates a transaction against everything added so far (so a
    transaction may spend an output created earlier in the block), applies
    it if valid, and otherwise raises without changing anything.  The
    proposer uses it to pick transactions; ``execute_block`` uses it to
    check a proposal.  Nothing is written to ``state``.
    """

    def __init__(
        self,
        state: StateView,
        chain_id: str,
        height: int,
        proposer: bytes,
        muhash_state: bytes,
        max_block_txs: int | None = None,
        max_block_bytes: int | None = None,
        sig_cache: SignatureCache | None = None,
    ):
        if len(proposer) != ADDRESS_SIZE:
            raise ValueError("proposer must be a 20-byte address")
        self.chain_id = chain_id
        self.height = height
        self.proposer = proposer
        self.muhash_state = muhash_state
        self.max_block_txs = max_block_txs
        self.max_block_bytes = max_block_bytes
        self.sig_cache = sig_cache
        self.overlay = OverlayState(state)
        self.txs: list[Transaction] = []
        """Transactions accepted so far, in order."""
        self.tx_fees: list[int] = []
        self.tx_addresses: list[tuple[bytes, ...]] = []
        self.tx_bytes = 0
        """Encoded bytes of the accepted transactions."""
        self._finished = False

    def add(self, tx: Transaction) -> int:
        """Validate and apply ``tx``; return its fee.

        Raises ``TxError`` if it is invalid, ``BlockError`` with
        ``bad-blk-double-spend`` if it spends an output already spent in this
        block, ``bad-blk-length``/``bad-blk-size`` if it does not fit.
        """
        out_total = _check_stateless(tx)
        if self.max_block_txs is not None and len(self.txs) >= self.max_block_txs:
            raise BlockError(BLK_LENGTH, f"block already holds {len(self.txs)} transactions, the limit")
        if self.max_block_bytes is not None and self.tx_bytes + tx.size > self.max_block_bytes:
            raise BlockError(BLK_SIZE, f"{tx.size} more bytes would exceed the block limit {self.max_block_bytes}")
        return self._add_checked(tx, out_total)

    def _add_checked(self, tx: Transaction, out_total: int) -> int:
        if self._finished:
            raise RuntimeError("BlockBuilder.finish() was already called")
        overlay = self.overlay
        try:
            fee, entries = _validate_stateful(tx, out_total, overlay, self.chain_id, self.sig_cache)
        except TxError as exc:
            if exc.code == TX_INPUTS_MISSINGORSPENT:
                for txin in tx.inputs:
                    if overlay.is_spent_here(txin.prev):
                        raise BlockError(
                            BLK_DOUBLE_SPEND,
                            f"output {txin.prev.txid.hex()}:{txin.prev.index} is already spent earlier in this block",
                            tx_index=len(self.txs), tx_error=exc) from exc
            raise
        apply_transaction(overlay, tx, self.height, entries)
        addresses = {entry.address for entry in entries}
        addresses.update(out.address for out in tx.outputs)
        self.txs.append(tx)
        self.tx_fees.append(fee)
        self.tx_addresses.append(tuple(sorted(addresses)))
        self.tx_bytes += tx.size
        return fee

    def finish(self, tx_root: bytes | None = None) -> BlockResult:
        """Pay the fees to the proposer and hash the new UTXO set; the builder is spent afterwards.

        ``tx_root`` is the merkle root of ``self.txs``' wtxids if the caller already computed it.
        """
        if self._finished:
            raise RuntimeError("BlockBuilder.finish() was already called")
        self._finished = True
        fees = sum(self.tx_fees)
        overlay = self.overlay
        if fees > 0:
            overlay.create(fee_outpoint(self.chain_id, self.height), UtxoEntry(self.proposer, fees, self.height))
        spent = tuple(overlay.spent.items())
        created = tuple(overlay.created.items())
        muhash = MuHash.deserialize(self.muhash_state)
        base_app_hash = muhash.digest()
        muhash.remove_many(utxo_element(op, entry) for op, entry in spent)
        muhash.add_many(utxo_element(op, entry) for op, entry in created)
        app_hash = muhash.digest()
        return BlockResult(
            height=self.height,
            proposer=self.proposer,
            tx_root=tx_root if tx_root is not None else compute_tx_root(self.txs),
            spent=spent,
            created=created,
            fees=fees,
            tx_fees=tuple(self.tx_fees),
            tx_addresses=tuple(self.tx_addresses),
            base_app_hash=base_app_hash,
            app_hash=app_hash,
            muhash_state=muhash.serialize(),
        )


def _chain_muhash(state: StateView, muhash_state: bytes | None) -> bytes:
    if muhash_state is not None:
        return muhash_state
    try:
        return state.muhash_state  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError("muhash_state is required when the state view does not carry one") from None


def _check_stateless_in_block(txs: Sequence[Transaction]) -> list[int]:
    totals = []
    for index, tx in enumerate(txs):
        try:
            totals.append(_check_stateless(tx))
        except TxError as exc:
            raise BlockError(exc.code, f"transaction {index}: {exc.message}", tx_index=index, tx_error=exc) from exc
    return totals


def _execute_checked(builder: BlockBuilder, txs: Sequence[Transaction], totals: list[int],
                     tx_root: bytes | None = None) -> BlockResult:
    for index, (tx, out_total) in enumerate(zip(txs, totals)):
        try:
            builder._add_checked(tx, out_total)
        except TxError as exc:
            raise BlockError(exc.code, f"transaction {index} ({tx.txid.hex()}): {exc.message}",
                             tx_index=index, tx_error=exc) from exc
    return builder.finish(tx_root)


def compute_block_result(
    txs: Sequence[Transaction],
    state: StateView,
    chain_id: str,
    height: int,
    proposer: bytes,
    muhash_state: bytes | None = None,
    max_block_txs: int | None = None,
    max_block_bytes: int | None = None,
    sig_cache: SignatureCache | None = None,
) -> BlockResult:
    """Execute ``txs`` in order as block ``height`` paying ``proposer``; every one must be valid.

    For a proposer that already chose its transactions: the result's
    ``app_hash`` and ``tx_root`` go into the header.  ``muhash_state``
    defaults to ``state.muhash_state`` (the Store's).
    """
    muhash_state = _chain_muhash(state, muhash_state)
    if max_block_txs is not None and len(txs) > max_block_txs:
        raise BlockError(BLK_LENGTH, f"{len(txs)} transactions, limit {max_block_txs}")
    totals = _check_stateless_in_block(txs)
    if max_block_bytes is not None:
        size = block_tx_bytes(txs)
        if size > max_block_bytes:
            raise BlockError(BLK_SIZE, f"transactions take {size} bytes, limit {max_block_bytes}")
    builder = BlockBuilder(state, chain_id, height, proposer, muhash_state, sig_cache=sig_cache)
    return _execute_checked(builder, txs, totals)


def check_block_body(block: Block) -> None:
    """The block's bytes are the ones its header (hence its id) commits to; pure, no state, no execution.

    Its transactions' wtxids must hash to the header's tx_root
    (``bad-blk-txroot``) and the certificate it carries for its parent must
    hash to the header's last_commit_hash (``bad-blk-commit``).  A block
    that passes is the only block with its id, so a certificate for the id
    certifies these bytes and a result cached by id belongs to them.
    """
    header = block.header
    computed = block.computed_tx_root
    if header.tx_root != computed:
        raise BlockError(BLK_TXROOT, f"header tx_root {header.tx_root.hex()}, the block's transactions hash to "
                                     f"{computed.hex()}: the body is not the one its header commits to")
    if header.last_commit_hash != commit_hash(block.last_commit):
        raise BlockError(BLK_COMMIT, "the carried last commit is not the one the header's last_commit_hash names")


def check_block_header(block: Block, state: StateView, chain_id: str) -> None:
    """Chain id, and (when ``state`` is a chain view) height and parent hash."""
    header = block.header
    if header.chain_id != chain_id:
        raise BlockError(BLK_CHAIN_ID, f"block is for chain {header.chain_id!r}, this node runs {chain_id!r}")
    tip_height = getattr(state, "height", None)
    if tip_height is not None:
        if header.height != tip_height + 1:
            raise BlockError(BLK_HEIGHT, f"block height {header.height}, expected {tip_height + 1}")
        parent = state.get_block_hash(tip_height) if tip_height > 0 else ZERO_HASH  # type: ignore[attr-defined]
        if header.prev_hash != parent:
            raise BlockError(BLK_PREVHASH, f"prev_hash {header.prev_hash.hex()} is not the tip "
                                           f"{(parent or ZERO_HASH).hex()}")
    elif header.height < 1:
        raise BlockError(BLK_HEIGHT, "block heights start at 1")


def execute_block(
    block: Block,
    state: StateView,
    chain_id: str,
    max_block_txs: int,
    max_block_bytes: int,
    expected_app_hash_check: bool = True,
    sig_cache: SignatureCache | None = None,
    muhash_state: bytes | None = None,
) -> BlockResult:
    """Validate ``block`` on top of ``state`` and return what committing it would do; writes nothing.

    Order: chain id, height and parent (when ``state`` is a chain view such
    as the Store), transaction count, stateless checks, byte size, body
    (``check_block_body``: tx root and carried last commit), then every
    transaction in order (signatures through ``sig_cache`` when given), the
    fee output, and the app hash against the header unless
    ``expected_app_hash_check`` is False.  ``muhash_state`` defaults to
    ``state.muhash_state``.
    """
    muhash_state = _chain_muhash(state, muhash_state)
    header = block.header
    check_block_header(block, state, chain_id)
    txs = block.txs
    if len(txs) > max_block_txs:
        raise BlockError(BLK_LENGTH, f"{len(txs)} transactions, limit {max_block_txs}")
    totals = _check_stateless_in_block(txs)
    size = block_tx_bytes(txs)
    if size > max_block_bytes:
        raise BlockError(BLK_SIZE, f"transactions take {size} bytes, limit {max_block_bytes}")
    check_block_body(block)
    builder = BlockBuilder(state, chain_id, header.height, header.proposer, muhash_state, sig_cache=sig_cache)
    result = _execute_checked(builder, txs, totals, block.computed_tx_root)
    if expected_app_hash_check and header.app_hash != result.app_hash:
        raise BlockError(BLK_APPHASH, f"header app_hash {header.app_hash.hex()}, computed {result.app_hash.hex()}")
    return result


def check_block_result(block: Block, result: BlockResult, chain_id: str) -> None:
    """Confirm ``block`` is the block ``result`` was computed for (cheap: no execution).

    For a proposer that built ``result`` with ``BlockBuilder`` and then the
    header, or a node that executed a proposal earlier and kept the result.
    """
    header = block.header
    if header.chain_id != chain_id:
        raise BlockError(BLK_CHAIN_ID, f"block is for chain {header.chain_id!r}, this node runs {chain_id!r}")
    if header.height != result.height or header.proposer != result.proposer:
        raise BlockError(BLK_RESULT, "the result was computed for another height or proposer")
    if header.tx_root != result.tx_root:
        raise BlockError(BLK_TXROOT, "header tx_root does not match the executed transactions")
    if block.computed_tx_root != result.tx_root:
        raise BlockError(BLK_TXROOT, "the block's transactions are not the executed ones")
    if header.app_hash != result.app_hash:
        raise BlockError(BLK_APPHASH, f"header app_hash {header.app_hash.hex()}, computed {result.app_hash.hex()}")


# --------------------------------------------------------------------------- genesis


def check_genesis_allocations(allocations: Sequence[tuple[bytes, int]]) -> int:
    """Every allocation pays a 20-byte address 0 < amount <= MAX_SUPPLY, and they sum to at most MAX_SUPPLY."""
    total = 0
    for i, (address, amount) in enumerate(allocations):
        if not isinstance(address, (bytes, bytearray)) or len(address) != ADDRESS_SIZE:
            raise GenesisError(GENESIS_ALLOCATION, f"allocation {i}: address must be 20 bytes")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_SUPPLY:
            raise GenesisError(GENESIS_ALLOCATION, f"allocation {i}: amount must be in [1, {MAX_SUPPLY}]")
        total += amount
    if total > MAX_SUPPLY:
        raise GenesisError(GENESIS_ALLOCATION, f"allocations sum to {total}, above MAX_SUPPLY {MAX_SUPPLY}")
    return total


def genesis_utxos(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> Iterator[tuple[OutPoint, UtxoEntry]]:
    """The height-0 UTXO set: allocation ``i`` at ``genesis_outpoint(chain_id, i)``. Check first."""
    txid = genesis_txid(chain_id)
    for index, (address, amount) in enumerate(allocations):
        yield OutPoint(txid, index), UtxoEntry(bytes(address), amount, 0)


def compute_genesis_muhash(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> MuHash:
    """MuHash of the genesis UTXO set (allocations checked)."""
    check_genesis_allocations(allocations)
    muhash = MuHash()
    muhash.add_many(utxo_element(op, entry) for op, entry in genesis_utxos(chain_id, allocations))
    muhash.normalize()
    return muhash


def compute_genesis_app_hash(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> bytes:
    """The app hash at height 0: what a genesis document's allocations hash to."""
    return compute_genesis_muhash(chain_id, allocations).digest()


__all__ = [
    "apply_block",
    "BlockBuilder",
    "BlockResult",
    "SignatureCache",
    "apply_transaction",
    "block_tx_bytes",
    "check_block_body",
    "check_block_header",
    "check_block_result",
    "check_chain_id",
    "check_genesis_allocations",
    "check_transaction_stateless",
    "compute_block_result",
    "compute_genesis_app_hash",
    "compute_genesis_muhash",
    "execute_block",
    "genesis_utxos",
    "is_valid_public_key",
    "validate_transaction",
    "verify_transaction_signatures",
]
