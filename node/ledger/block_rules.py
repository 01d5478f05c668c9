"""The block rules: checking a block's bytes and header, building a block, executing one.

A block's life:

* a validator checks a proposal with ``execute_block`` (executes it against
  an overlay, writes nothing) and keeps the ``BlockResult``;
* once the block is decided, ``Store.commit_block(block, commit, result)``
  writes that result, so a block is executed once, not twice;
* a proposer uses ``BlockBuilder``: add candidate transactions one by one
  (invalid ones are refused without disturbing the others), and ``finish()``
  gives the result whose ``app_hash`` and ``tx_root`` go in the header;
* anyone holding a block's bytes (block sync, the store) can run
  ``check_block_body`` first, without state: it confirms the bytes are the
  ones the block's id commits to, so a result cached by id belongs to them.

A block is invalid if any transaction is invalid (``BlockError`` with that
transaction's code), or if two of its transactions spend the same output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from node.crypto import ADDRESS_SIZE
from node.ledger.errors import (
    BLK_APPHASH,
    BLK_CHAIN_ID,
    BLK_COMMIT,
    BLK_DOUBLE_SPEND,
    BLK_HEIGHT,
    BLK_INPUTS,
    BLK_LENGTH,
    BLK_NEXT_VALIDATORS,
    BLK_PREVHASH,
    BLK_RECONFIG_HASH,
    BLK_SIZE,
    BLK_TXROOT,
    TX_INPUTS_MISSINGORSPENT,
    BlockError,
    ReconfigError,
    TxError,
)
from node.ledger.muhash import MuHash
from node.ledger.reconfig_rules import MAX_BLOCK_INPUTS, ReconfigBuilder
from node.ledger.signatures import SignatureCache
from node.ledger.state import ChainView, OverlayState, StateView, UtxoEntry, fee_outpoint, utxo_element
from node.ledger.tx_rules import apply_transaction, check_transaction_stateless, validate_inputs
from node.ledger.validator_state import ValidatorState
from node.types.block import Block, compute_tx_root
from node.types.commit import commit_hash
from node.types.hashes import ZERO_HASH
from node.types.transaction import OutPoint, Transaction


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
    validator_state: ValidatorState | None = None
    """The validator state after the block (None only where a bare UTXO set is executed, as in unit tests)."""


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
        out_total = check_transaction_stateless(tx)
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
            fee, entries = validate_inputs(tx, out_total, overlay, self.chain_id, self.sig_cache)
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
    if header.inputs_hash != block.computed_inputs_hash:
        raise BlockError(BLK_INPUTS, "the header's inputs_hash does not name the reconfiguration inputs the block "
                                     "carries: the body is not the one its header commits to")


def check_block_header(block: Block, state: StateView, chain_id: str) -> None:
    """Chain id, and (when ``state`` is a chain view) height and parent hash."""
    header = block.header
    if header.chain_id != chain_id:
        raise BlockError(BLK_CHAIN_ID, f"block is for chain {header.chain_id!r}, this node runs {chain_id!r}")
    tip_height = getattr(state, "height", None)
    if tip_height is not None:
        if header.height != tip_height + 1:
            raise BlockError(BLK_HEIGHT, f"block height {header.height}, expected {tip_height + 1}")
        chain = cast(ChainView, state)  # a view that knows its height is a chain view
        parent = chain.get_block_hash(tip_height) if tip_height > 0 else ZERO_HASH
        if header.prev_hash != parent:
            raise BlockError(BLK_PREVHASH, f"prev_hash {header.prev_hash.hex()} is not the tip "
                                           f"{(parent or ZERO_HASH).hex()}")
    elif header.height < 1:
        raise BlockError(BLK_HEIGHT, "block heights start at 1")


def _chain_muhash(state: StateView, muhash_state: bytes | None) -> bytes:
    if muhash_state is not None:
        return muhash_state
    carried = getattr(state, "muhash_state", None)  # a chain view carries one
    if carried is None:
        raise TypeError("muhash_state is required when the state view does not carry one")
    return carried


def _check_stateless_in_block(txs: Sequence[Transaction]) -> list[int]:
    totals = []
    for index, tx in enumerate(txs):
        try:
            totals.append(check_transaction_stateless(tx))
        except TxError as exc:
            raise BlockError(exc.code, f"transaction {index}: {exc.message}", tx_index=index, tx_error=exc) from exc
    return totals


def execute_block(
    block: Block,
    state: StateView,
    chain_id: str,
    max_block_txs: int,
    max_block_bytes: int,
    expected_app_hash_check: bool = True,
    sig_cache: SignatureCache | None = None,
    muhash_state: bytes | None = None,
    validator_state: ValidatorState | None = None,
) -> BlockResult:
    """Validate ``block`` on top of ``state`` and return what committing it would do; writes nothing.

    Order: chain id, height and parent (when ``state`` is a chain view such
    as the Store), transaction count, stateless checks, byte size, body
    (``check_block_body``: tx root and carried last commit), then every
    transaction in order (signatures through ``sig_cache`` when given), the
    fee output, and the app hash against the header unless
    ``expected_app_hash_check`` is False; then the reconfiguration inputs on
    the validator state (``node.ledger.reconfig_rules``) and the header's
    ``next_validators_hash`` and ``reconfig_hash``.  ``muhash_state`` and
    ``validator_state`` default to the ones ``state`` carries (a bare UTXO
    set without a validator state executes blocks without inputs only).
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
    for index, (tx, out_total) in enumerate(zip(txs, totals, strict=True)):
        try:
            builder._add_checked(tx, out_total)
        except TxError as exc:
            raise BlockError(exc.code, f"transaction {index} ({tx.txid.hex()}): {exc.message}",
                             tx_index=index, tx_error=exc) from exc
    result = builder.finish(block.computed_tx_root)
    if expected_app_hash_check and header.app_hash != result.app_hash:
        raise BlockError(BLK_APPHASH, f"header app_hash {header.app_hash.hex()}, computed {result.app_hash.hex()}")
    if validator_state is None:
        validator_state = getattr(state, "validator_state", None)
    if validator_state is None:
        if block.inputs:
            raise BlockError(BLK_INPUTS, "reconfiguration inputs need a validator state to apply to")
        return result
    return replace(result, validator_state=execute_reconfig(block, validator_state, chain_id))


def execute_reconfig(block: Block, before: ValidatorState, chain_id: str) -> ValidatorState:
    """Apply ``block``'s reconfiguration inputs to the validator state before it and check the header's names
    of the next set and of the state after it (``bad-blk-inputs``, ``bad-blk-next-validators``,
    ``bad-blk-reconfig-hash``, or the refused input's ``reconfig-*`` code)."""
    header = block.header
    if len(block.inputs) > MAX_BLOCK_INPUTS:
        raise BlockError(BLK_INPUTS, f"{len(block.inputs)} reconfiguration inputs, limit {MAX_BLOCK_INPUTS}")
    if header.next_validators_hash != before.next.hash:
        raise BlockError(BLK_NEXT_VALIDATORS, "next_validators_hash does not name the next height's validator set")
    builder = ReconfigBuilder(before, chain_id, header.height)
    for index, item in enumerate(block.inputs):
        try:
            builder.add(item)
        except ReconfigError as exc:
            raise BlockError(exc.code, f"reconfiguration input {index}: {exc.message}") from exc
    after = builder.finish()
    if header.reconfig_hash != after.hash:
        raise BlockError(BLK_RECONFIG_HASH, "reconfig_hash does not name the validator state after the block")
    return after
