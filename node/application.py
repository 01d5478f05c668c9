"""The application as consensus sees it: block validity, a value's id and time, and the block to propose.

The consensus driver calls ``is_valid``, ``value_id``, ``value_time`` and
``get_value`` synchronously.  A value is an encoded block; its id is the
header hash, which covers every byte of it.  A block this node built or
already executed is kept with its result (the executed-block cache, emptied
at each commit), so a decided block is not executed twice, and the last
decoded value is remembered, so the driver's calls on one proposal decode it
once.  The chain rules (``node.ledger.chain``) and the transition function
(``node.ledger.rules``) decide validity.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import replace

from genesis.document import ConsensusParams
from node.consensus.bft_time import block_time
from node.consensus.certificate import CertificateError, verify_commit
from node.encoding import DecodeError, Reader
from node.ledger.chain import ChainTip, check_chain_fields
from node.ledger.errors import BLK_HEIGHT, BlockError, LedgerError, ReconfigError, TxError
from node.ledger.reconfig_rules import MAX_BLOCK_INPUTS, ReconfigBuilder
from node.ledger.rules import BlockBuilder, BlockResult, SignatureCache, check_block_body, execute_block
from node.ledger.store import Store
from node.ledger.validator_state import ValidatorState
from node.mempool import Mempool
from node.reconfig_pool import ReconfigPool
from node.types.block import Block, Header
from node.types.commit import Commit, commit_hash
from node.types.reconfig import inputs_hash
from node.types.validators import ValidatorSet

log = logging.getLogger("ledger.node")

MAX_EXECUTED_CACHE = 64


class Application:
    """The ledger behind the consensus driver's callbacks, for one node."""

    def __init__(self, store: Store, mempool: Mempool, *, chain_id: str, params: ConsensusParams,
                 genesis_time_ms: int, proposer: bytes, sig_cache: SignatureCache,
                 reconfig_pool: ReconfigPool | None = None):
        self.store = store
        self.mempool = mempool
        self.reconfig_pool = reconfig_pool
        """Approvals and quits waiting for a block (None: this node proposes none)."""
        self.chain_id = chain_id
        self.params = params
        self.genesis_time_ms = genesis_time_ms
        self.proposer = proposer
        """This node's address, named as proposer in the blocks it builds."""
        self.sig_cache = sig_cache
        self.executed: collections.OrderedDict[bytes, tuple[Block, BlockResult]] = collections.OrderedDict()
        self.last_commit: Commit | None = store.get_commit(store.height) if store.height > 0 else None
        """The certificate of the tip, carried by the next block this node proposes."""
        self._last_decoded: tuple[bytes, Block] | None = None

    # ------------------------------------------------------------------ values

    def decode_block(self, value: bytes) -> Block:
        """The block in ``value``, whose body its header commits to (else BlockError ``bad-blk-txroot``).

        A block this node proposed or already validated is not decoded again, and the last decoded value is
        remembered, so the driver's ``value_id`` and ``is_valid`` calls on one proposal decode it once."""
        last = self._last_decoded
        if last is not None and last[0] is value:
            return last[1]
        header_hash = Header.decode(Reader(value).var_bytes(1024)).hash
        cached = self.executed.get(header_hash)
        if cached is not None and cached[0].encoded == value:
            block = cached[0]
        else:
            block = Block.decode(value, known=self.mempool.by_encoded)
            check_block_body(block)
        self._last_decoded = (value, block)
        return block

    def value_id(self, value: bytes) -> bytes:
        """A value's id is its header hash, and only bytes whose body that header commits to have one: a copy
        with a tampered transaction under the genuine header is not a value of that id (the driver drops it)."""
        return self.decode_block(value).hash

    @staticmethod
    def value_time(value: bytes) -> int:
        """The time a proposed block carries (the driver dates its precommit for the block after it)."""
        return Header.decode(Reader(value).var_bytes(1024)).time_ms

    @property
    def validator_state(self) -> ValidatorState:
        state = self.store.validator_state
        assert state is not None  # a node's store holds its genesis validator state (written by init)
        return state

    @property
    def validators(self) -> ValidatorSet:
        """The set that decides the next height, with its proposer priorities."""
        return self.validator_state.current

    def validators_at(self, height: int) -> ValidatorSet:
        """The set of ``height`` (from 1 to the tip + 2)."""
        validators = self.store.get_validators(height)
        if validators is None:
            raise BlockError(BLK_HEIGHT, f"no validator set is known for height {height} (tip {self.store.height})")
        return validators

    def block_time(self, height: int, last_commit: Commit | None) -> int:
        """The time block ``height`` must carry: BFT time, the weighted median of the precommit times in the
        certificate of its parent it carries, by the power of the parent's set (``genesis_time_ms + 1`` for the
        first block)."""
        parent_set = self.validators_at(height - 1) if height > 1 else self.validators
        return block_time(height, last_commit, parent_set, self.genesis_time_ms)

    # ------------------------------------------------------------------ validity

    def tip(self) -> ChainTip:
        """The committed tip the next block extends; its time is the genesis time before the first block."""
        height = self.store.height
        if height <= 0:
            return ChainTip(height, self.store.tip_hash, self.genesis_time_ms)
        header = self.store.get_header(height)
        assert header is not None  # the tip block is in the store (checked when it was opened, kept by commits)
        return ChainTip(height, self.store.tip_hash, header.time_ms)

    def check_chain_fields(self, block: Block) -> None:
        """What the ledger rules cannot see: parent, time, proposer, validator set, last commit."""
        check_chain_fields(block, self.tip(), self.validators, verify_commit=self._parent_certificate_problem,
                           block_time=self.block_time)

    def _parent_certificate_problem(self, commit: Commit, block_hash: bytes, height: int) -> str | None:
        try:
            verify_commit(self.chain_id, self.validators_at(height), commit, block_hash, height)
        except CertificateError as exc:
            return str(exc)
        return None

    def execute(self, block: Block) -> BlockResult:
        """Check ``block`` against the chain and execute it on the committed state (cached by its id)."""
        check_block_body(block)  # a result cached by id belongs to the bytes the id covers, and to no others
        cached = self.executed.get(block.hash)
        if cached is not None:
            return cached[1]
        self.check_chain_fields(block)
        result = execute_block(block, self.store, self.chain_id, self.params.max_block_txs,
                               self.params.max_block_bytes, sig_cache=self.sig_cache)
        self.executed[block.hash] = (block, result)
        while len(self.executed) > MAX_EXECUTED_CACHE:
            self.executed.popitem(last=False)
        return result

    def is_valid(self, height: int, value: bytes) -> bool:
        try:
            block = self.decode_block(value)
            if block.header.height != height:
                return False
            self.execute(block)
            return True
        except (LedgerError, DecodeError, ValueError) as exc:
            log.debug("invalid proposal height=%d code=%s %s", height, getattr(exc, "code", "bad-encoding"), exc)
            return False

    # ------------------------------------------------------------------ proposing and committing

    def get_value(self, height: int, round_: int) -> bytes:
        """The block this node proposes: the mempool's best transactions that fit, dated by BFT time."""
        muhash_state = self.store.muhash_state
        assert muhash_state is not None  # a running node's store holds its genesis (checked at start)
        builder = BlockBuilder(self.store, self.chain_id, height, self.proposer, muhash_state,
                               self.params.max_block_txs, self.params.max_block_bytes, sig_cache=self.sig_cache)
        for tx in self.mempool.select(self.params.max_block_txs, self.params.max_block_bytes):
            try:
                builder.add(tx)
            except (TxError, BlockError) as exc:
                log.debug("left out of block txid=%s code=%s", tx.txid.hex(), exc.code)
        result = builder.finish()
        before = self.validator_state
        reconfig = ReconfigBuilder(before, self.chain_id, height)
        if self.reconfig_pool is not None:
            for item in self.reconfig_pool.select():
                if len(reconfig.inputs) >= MAX_BLOCK_INPUTS:
                    break
                try:
                    reconfig.add(item)
                except ReconfigError as exc:
                    log.debug("reconfiguration input left out of block code=%s", exc.code)
        after = reconfig.finish()
        result = replace(result, validator_state=after)
        inputs = tuple(reconfig.inputs)
        header = Header(
            chain_id=self.chain_id,
            height=height,
            time_ms=self.block_time(height, self.last_commit if height > 1 else None),
            prev_hash=self.store.tip_hash,
            tx_root=result.tx_root,
            app_hash=result.app_hash,
            proposer=self.proposer,
            last_commit_hash=commit_hash(self.last_commit),
            validators_hash=before.current.hash,
            next_validators_hash=before.next.hash,
            inputs_hash=inputs_hash(inputs),
            reconfig_hash=after.hash,
        )
        block = Block(header, tuple(builder.txs), self.last_commit if height > 1 else None, inputs)
        self.executed[block.hash] = (block, result)
        log.debug("proposing height=%d round=%d txs=%d", height, round_, len(block.txs))
        return block.encode()

    def on_commit(self, commit: Commit) -> None:
        """A block was committed with ``commit``: it is the certificate the next proposal carries, and the
        executed results belong to the old tip."""
        self.last_commit = commit
        self.executed.clear()
