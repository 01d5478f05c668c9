"""The node runtime: one process, one event loop, wiring the three concerns.

    clients --REST--> api ---------> mempool ---gossip--> peers
                                       |  (dissemination)
    peers --/p2p/consensus--> ConsensusDriver (sans-IO)  (commit)
                                       |  Decide
                                       v
                      rules.execute_block -> Store.commit_block  (execution)

Everything runs on the asyncio loop: the consensus driver is called with
events and returns actions that this module carries out (broadcast, timers,
commit).  Block sync runs beside it and feeds certified blocks from peers
through the same commit path.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from genesis.document import genesis_hash, genesis_to_json, validator_set_of
from node.config import DATA_DIR, GENESIS_FILE, KEY_FILE, SIGNER_FILE, WAL_FILE, NodeConfig
from node.consensus.bft_time import block_time
from node.consensus.certificate import CertificateError, verify_commit
from node.consensus.driver import (
    BroadcastProposal,
    BroadcastVote,
    ConsensusDriver,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
    TimeoutParams,
)
from node.consensus.messages import Commit
from node.consensus.relay import STATUS_INTERVAL_MS, Relay, Verdict
from node.consensus.round_status import RELAY_PROTOCOL_VERSION, RoundStatus
from node.consensus.signer import DurableSigner
from node.consensus.wal import FileWAL
from node.encoding import DecodeError, Reader
from node.home import load_key_file
from node.ledger.blocks import ZERO_HASH, Block, Header, commit_hash
from node.ledger.errors import BlockError, LedgerError, TxError
from node.ledger.rules import BlockBuilder, BlockResult, SignatureCache, check_block_body, execute_block
from node.ledger.store import Store
from node.ledger.transactions import Transaction
from node.mempool import AlreadyCommitted, Mempool, MempoolError, MempoolJournal
from node.metrics import NodeMetrics
from node.p2p.gossip import Gossip
from node.p2p.wire import (
    ConsensusMessage,
    decode_block_batch,
    decode_status_answer,
    encode_consensus_message,
    encode_status_answer,
)

log = logging.getLogger("ledger.node")

SYNC_BATCH = 50
MAX_EXECUTED_CACHE = 64
EVIDENCE_FILE = "evidence.jsonl"
CLOCK_WARNING_INTERVAL_S = 60.0
"""A node whose clock is off says so at most this often."""
GENESIS_FILE_DIGEST = "genesis_file_sha256"
JOURNAL_FILE = "mempool.journal"


class StateDivergence(RuntimeError):
    """This node's execution disagrees with a block +2/3 of the validators committed."""

    code = "state-divergence"


@dataclass(frozen=True)
class TxLocation:
    """Where a committed transaction sits."""

    height: int
    index: int
    block_hash: bytes


class Node:
    """A validator (or full node, when its key is not in genesis)."""

    def __init__(self, home: Path, config: NodeConfig):
        self.home = Path(home)
        self.config = config
        self.store = Store.open(str(self.home / DATA_DIR))
        self.genesis, self.genesis_hash = self._load_genesis()
        self.chain_id = self.genesis.chain_id
        self.params = self.genesis.params
        self.validators = validator_set_of(self.genesis)
        self.key = load_key_file(self.home / KEY_FILE)
        self.address = self.key.address
        self.is_validator = self.validators.get(self.address) is not None
        self.sig_cache = SignatureCache()
        expiry = config.mempool_expiry_blocks or self.params.mempool_expiry_blocks
        self.mempool = Mempool(self.store, self.chain_id, self.sig_cache, config.mempool_max_txs,
                               config.mempool_max_bytes, expiry, self.store.height)
        self.journal = MempoolJournal(str(self.home / JOURNAL_FILE))
        self._recover_journal()
        self.signer = DurableSigner(str(self.home / SIGNER_FILE), self.key.private_key, self.chain_id) \
            if self.is_validator else None
        self.wal = FileWAL(str(self.home / WAL_FILE))
        self.driver = ConsensusDriver(
            chain_id=self.chain_id,
            validators=self.validators,
            signer=self.signer,
            params=TimeoutParams(self.params.timeout_propose_ms, self.params.timeout_prevote_ms,
                                 self.params.timeout_precommit_ms, self.params.timeout_delta_ms),
            is_valid=self._is_valid,
            value_id=self._value_id,
            get_value=self._get_value,
            now_ms=self._now_ms,
            wal=self.wal,
            value_time=self._value_time,
        )
        self.own_url = f"http://{config.host}:{config.port}"
        self.gossip = Gossip(list(config.peers), self.own_url, config.gossip_batch_txs, config.gossip_flush_ms,
                             config.gossip_queue_max, config.peer_timeout_ms)
        self.metrics = NodeMetrics(self)
        self.executed: collections.OrderedDict[bytes, tuple[Block, BlockResult]] = collections.OrderedDict()
        self._last_decoded: tuple[bytes, Block] | None = None
        self.last_commit: Commit | None = self.store.get_commit(self.store.height) if self.store.height > 0 else None
        self.relay = Relay(self.driver, self._decided_at)
        self.commit_waiters: dict[bytes, list[asyncio.Future]] = {}
        self.height_changed = asyncio.Event()
        self.catching_up = False
        self.evidence: list[dict] = self._load_evidence()
        self.started_at = time.time()
        self.last_block_time = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._next_height_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._sync_wakeup = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self.fatal: BaseException | None = None
        self.clock_offset_ms: int | None = None
        """This clock minus the median of the other validators' latest precommit times (None: none seen yet)."""
        self._peer_clock_offsets: dict[bytes, int] = {}
        self._skew_warned_at = -CLOCK_WARNING_INTERVAL_S
        self._stop_event = asyncio.Event()

    def _load_genesis(self):
        """Genesis without its allocations (the store holds them as UTXOs): a large genesis costs no memory.

        When the genesis file is the one the store was initialized from (same
        SHA-256 of its bytes), the header comes from the store's canonical
        copy; otherwise the file is parsed in full and checked once.
        """
        import dataclasses

        from genesis.document import decode_genesis_header, loads_genesis
        from node.crypto import sha256

        raw = (self.home / GENESIS_FILE).read_bytes()
        digest = sha256(raw)
        doc = self.store.genesis_doc
        if doc is not None and self.store.get_meta(GENESIS_FILE_DIGEST) == digest \
                and sha256(doc) == self.store.genesis_hash:
            return decode_genesis_header(doc), self.store.genesis_hash
        genesis = loads_genesis(raw)
        ghash = genesis_hash(genesis)
        if self.store.genesis_hash != ghash:
            self.store.close()
            raise RuntimeError(f"store in {self.home / DATA_DIR} belongs to another genesis; re-run init")
        self.store.put_meta(GENESIS_FILE_DIGEST, digest)
        return dataclasses.replace(genesis, allocations=()), ghash

    @property
    def genesis_json(self) -> dict:
        """The genesis document as JSON, read from the file when asked (it can be large)."""
        from genesis.document import loads_genesis

        return genesis_to_json(loads_genesis((self.home / GENESIS_FILE).read_bytes()))

    # ------------------------------------------------------------------ lifecycle

    def _recover_journal(self) -> None:
        """Re-admit acknowledged transactions that had not committed before a crash."""
        readmitted = 0
        for raw in self.journal.recovered:
            try:
                _, new = self.mempool.add(Transaction.decode(raw))
                readmitted += int(new)
            except (DecodeError, LedgerError, MempoolError):
                continue  # committed meanwhile, or conflicted: nothing acknowledged is pending any more
        if self.journal.recovered:
            log.info("mempool journal recovered=%d readmitted=%d", len(self.journal.recovered), readmitted)
        self.journal.recovered = []
        self.journal.compact(self.mempool)

    def start_consensus(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.gossip.start()
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="block-sync"))
        for link in self.gossip.links:
            self._tasks.append(asyncio.create_task(self._status_loop(link), name=f"round-state:{link.url}"))
        self._start_height(self.store.height + 1)
        log.info("node started name=%s chain=%s height=%d validator=%s peers=%d", self.config.name,
                 self.chain_id, self.store.height, self.is_validator, len(self.config.peers))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._next_height_task is not None:
            self._next_height_task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.gossip.stop()
        self.journal.close()
        self.store.close()
        log.info("node stopped name=%s height=%d", self.config.name, self.store.height)

    def request_stop(self, error: BaseException | None = None) -> None:
        if error is not None and self.fatal is None:
            self.fatal = error
        self._stop_event.set()

    # ------------------------------------------------------------------ consensus callbacks (synchronous)

    def _decode_block(self, value: bytes) -> Block:
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

    def _value_id(self, value: bytes) -> bytes:
        """A value's id is its header hash, and only bytes whose body that header commits to have one: a copy
        with a tampered transaction under the genuine header is not a value of that id (the driver drops it)."""
        return self._decode_block(value).hash

    def _value_time(self, value: bytes) -> int:
        """The time a proposed block carries (the driver dates its precommit for the block after it)."""
        return Header.decode(Reader(value).var_bytes(1024)).time_ms

    def _now_ms(self) -> int:
        """This node's clock for consensus (Unix ms): the wall clock shifted by ``clock_offset_ms`` (a testing aid)."""
        return int(time.time() * 1000) + self.config.clock_offset_ms

    def _block_time(self, height: int, last_commit: Commit | None) -> int:
        """The time block ``height`` must carry: BFT time, the weighted median of the precommit times in the
        certificate of its parent it carries (``genesis_time_ms + 1`` for the first block)."""
        return block_time(height, last_commit, self.validators, self.genesis.genesis_time_ms)

    def _parent_time(self, height: int) -> int:
        """Time of block ``height - 1`` (the genesis time for the first block): a block's time must pass it."""
        return self.store.get_header(height - 1).time_ms if height > 1 else self.genesis.genesis_time_ms

    def _check_chain_fields(self, block: Block) -> None:
        """What the ledger rules cannot see: parent, time, proposer, validator set, last commit."""
        header = block.header
        height = self.store.height + 1
        if header.height != height:
            raise BlockError("bad-blk-height", f"block height {header.height}, expected {height}")
        if header.prev_hash != self.store.tip_hash:
            raise BlockError("bad-blk-prevhash", "block does not build on this node's last block")
        if header.validators_hash != self.validators.hash:
            raise BlockError("bad-blk-validators", "validators hash does not match the validator set")
        if self.validators.get(header.proposer) is None:
            raise BlockError("bad-blk-proposer", "proposer is not a validator")
        if height == 1:
            if block.last_commit is not None or header.last_commit_hash != ZERO_HASH:
                raise BlockError("bad-blk-commit", "the first block carries no last commit")
        else:
            if block.last_commit is None:
                raise BlockError("bad-blk-commit", "block carries no certificate for its parent")
            if header.last_commit_hash != block.last_commit.hash:
                raise BlockError("bad-blk-commit", "last_commit_hash does not match the carried certificate")
            try:
                verify_commit(self.chain_id, self.validators, block.last_commit, header.prev_hash, height - 1)
            except CertificateError as exc:
                raise BlockError("bad-blk-commit", f"parent certificate: {exc}") from exc
        expected = self._block_time(height, block.last_commit)
        if header.time_ms != expected:
            raise BlockError("bad-blk-time", f"block time {header.time_ms} is not {expected}, the " + (
                "genesis time + 1" if height == 1 else "weighted median of the precommit times in its last commit"))
        prev_time = self._parent_time(height)
        if header.time_ms <= prev_time:
            raise BlockError("bad-blk-time", f"block time {header.time_ms} is not after {prev_time}")

    def _execute(self, block: Block) -> BlockResult:
        check_block_body(block)  # a result cached by id belongs to the bytes the id covers, and to no others
        cached = self.executed.get(block.hash)
        if cached is not None:
            return cached[1]
        self._check_chain_fields(block)
        result = execute_block(block, self.store, self.chain_id, self.params.max_block_txs,
                               self.params.max_block_bytes, sig_cache=self.sig_cache)
        self.executed[block.hash] = (block, result)
        while len(self.executed) > MAX_EXECUTED_CACHE:
            self.executed.popitem(last=False)
        return result

    def _is_valid(self, height: int, value: bytes) -> bool:
        try:
            block = self._decode_block(value)
            if block.header.height != height:
                return False
            self._execute(block)
            return True
        except (LedgerError, DecodeError, ValueError) as exc:
            log.debug("invalid proposal height=%d code=%s %s", height, getattr(exc, "code", "bad-encoding"), exc)
            return False

    def _get_value(self, height: int, round_: int) -> bytes:
        builder = BlockBuilder(self.store, self.chain_id, height, self.address, self.store.muhash_state,
                               self.params.max_block_txs, self.params.max_block_bytes, sig_cache=self.sig_cache)
        for tx in self.mempool.select(self.params.max_block_txs, self.params.max_block_bytes):
            try:
                builder.add(tx)
            except (TxError, BlockError) as exc:
                log.debug("left out of block txid=%s code=%s", tx.txid.hex(), exc.code)
        result = builder.finish()
        header = Header(
            chain_id=self.chain_id,
            height=height,
            time_ms=self._block_time(height, self.last_commit if height > 1 else None),
            prev_hash=self.store.tip_hash,
            tx_root=result.tx_root,
            app_hash=result.app_hash,
            proposer=self.address,
            last_commit_hash=commit_hash(self.last_commit),
            validators_hash=self.validators.hash,
        )
        block = Block(header, tuple(builder.txs), self.last_commit if height > 1 else None)
        self.executed[block.hash] = (block, result)
        log.debug("proposing height=%d round=%d txs=%d", height, round_, len(block.txs))
        return block.encode()

    # ------------------------------------------------------------------ actions

    def _run_actions(self, actions: list) -> None:
        queue = collections.deque(actions)
        while queue:
            action = queue.popleft()
            if isinstance(action, (BroadcastProposal, BroadcastVote)):
                message = action.proposal if isinstance(action, BroadcastProposal) else action.vote
                encoded = encode_consensus_message(message)
                self.relay.mark_seen(hashlib.sha256(encoded).digest())
                self.gossip.broadcast_consensus(encoded)
            elif isinstance(action, ScheduleTimeout):
                assert self.loop is not None
                timer = self.loop.call_later(action.delay_ms / 1000, self._on_timeout, action.timeout)
                self._timers.append(timer)
                if len(self._timers) > 64:
                    self._timers = [t for t in self._timers if not t.cancelled() and t.when() > self.loop.time()]
            elif isinstance(action, Decide):
                self._on_decide(action)
            elif isinstance(action, ReportEvidence):
                self._record_evidence(action.evidence)

    def _on_timeout(self, timeout) -> None:
        if self.fatal is not None:
            return
        self._run_actions(self.driver.on_timeout(timeout))

    def _on_decide(self, decision: Decide) -> None:
        if decision.height != self.store.height + 1:
            return  # block sync got there first
        try:
            block = self._decode_block(decision.value)
            result = self._execute(block)
        except (LedgerError, DecodeError) as exc:
            self._diverge(decision.height, f"decided block does not execute here: {exc}")
            return
        self._commit(block, decision.commit, result, decision.round)
        self._observe_clocks(decision.commit)
        self._schedule_next_height(decision.height, decision.commit)

    def _observe_clocks(self, commit: Commit) -> None:
        """Compare this node's clock with the precommit times of the other validators in a commit it has just
        decided (signed moments ago) and say so, at most once a minute, when it is far off.

        The offset is the median over the other validators of (this clock - their latest precommit time), the
        middle value nearer to this clock for an even count.  Block time does not depend on it.
        """
        now = self._now_ms()
        for cs in commit.signatures:
            if cs.validator != self.address:
                self._peer_clock_offsets[cs.validator] = now - cs.time_ms
        offsets = sorted(self._peer_clock_offsets.values())
        if not offsets:
            return
        mid = len(offsets) // 2
        self.clock_offset_ms = min(offsets[mid - 1:mid + 1] if len(offsets) % 2 == 0 else [offsets[mid]], key=abs)
        if self.clock_skewed and time.monotonic() - self._skew_warned_at >= CLOCK_WARNING_INTERVAL_S:
            self._skew_warned_at = time.monotonic()
            log.warning("clock: this node's clock is %+d ms off the median of the other validators' precommit "
                        "times (more than clock_skew_warn_ms=%d); block times come from the validators and are "
                        "not affected, but fix this machine's clock (NTP)%s", self.clock_offset_ms,
                        self.config.clock_skew_warn_ms,
                        f"; clock_offset_ms={self.config.clock_offset_ms} is set" if self.config.clock_offset_ms
                        else "")

    @property
    def clock_skewed(self) -> bool:
        """True when this node's clock is more than ``clock_skew_warn_ms`` off the other validators'."""
        return self.clock_offset_ms is not None and abs(self.clock_offset_ms) > self.config.clock_skew_warn_ms

    def _schedule_next_height(self, height: int, commit: Commit) -> None:
        if self._next_height_task is not None and not self._next_height_task.done():
            self._next_height_task.cancel()
        self._next_height_task = asyncio.create_task(self._start_next_height(height, commit))

    async def _start_next_height(self, decided: int, commit: Commit) -> None:
        all_in = len(commit.signatures) >= len(self.validators.validators)
        if self.params.timeout_commit_ms > 0 and not all_in:
            await asyncio.sleep(self.params.timeout_commit_ms / 1000)
        if len(self.mempool) == 0 and self.config.create_empty_blocks_ms > 0:
            deadline = time.monotonic() + self.config.create_empty_blocks_ms / 1000
            while len(self.mempool) == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        if self.driver.height != decided or self.store.height != decided:
            return
        late = self.driver.commit_for_decided()
        if late is not None and late.block_hash == commit.block_hash:
            self.last_commit = late
        self._start_height(decided + 1)

    # ------------------------------------------------------------------ commit

    def _commit(self, block: Block, commit: Commit, result: BlockResult, round_: int) -> None:
        """Write the block; wake everyone waiting on it."""
        started = time.monotonic()
        self.store.commit_block(block, commit, result)
        self.last_commit = commit
        self.executed.clear()
        self.mempool.update(block.height, list(block.txs))
        self.journal.on_commit(self.mempool)
        now = time.monotonic()
        interval = now - self.last_block_time
        self.last_block_time = now
        self.metrics.on_commit(block, round_, interval)
        for index, tx in enumerate(block.txs):
            waiters = self.commit_waiters.pop(tx.txid, None)
            if waiters:
                location = TxLocation(block.height, index, block.hash)
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(location)
        self.height_changed.set()
        self.height_changed = asyncio.Event()
        log.info("committed height=%d txs=%d round=%d hash=%s interval_ms=%d write_ms=%.1f mempool=%d",
                 block.height, len(block.txs), round_, block.hash.hex()[:16], interval * 1000,
                 (time.monotonic() - started) * 1000, len(self.mempool))

    def _diverge(self, height: int, reason: str) -> None:
        error = StateDivergence(f"state divergence at height {height}: {reason}; this node's state disagrees "
                                f"with what +2/3 of the validators committed. Stopping.")
        log.critical("%s", error)
        self.request_stop(error)

    # ------------------------------------------------------------------ inbound

    def _start_height(self, height: int) -> None:
        """Start consensus at ``height``; messages the relay buffered for it are offered again."""
        actions, reoffered = self.relay.start_height(height)
        self._run_actions(actions)
        for encoded, received in reoffered:
            self._after_receive(encoded, received)

    def _after_receive(self, encoded, received) -> None:
        if received.flood and encoded is not None:
            self.gossip.broadcast_consensus(encoded)
        if received.actions:
            self._run_actions(received.actions)

    def receive_consensus(self, messages: list[tuple[ConsensusMessage | DecodeError, bytes]]) -> dict:
        """Messages from a peer, each with its framed bytes: the relay decides what the driver gets and what
        is re-flooded (only what the driver kept, with the bytes it arrived in)."""
        counts = {verdict: 0 for verdict in Verdict}
        malformed = 0
        for message, encoded in messages:
            if isinstance(message, DecodeError):
                malformed += 1
                continue
            if self.fatal is not None:
                break
            received = self.relay.receive(message, hashlib.sha256(encoded).digest(), encoded)
            counts[received.verdict] += 1
            if received.verdict is Verdict.BUFFERED and message.height > self.driver.height + 1:
                self._sync_wakeup.set()  # peers are heights ahead: block sync gets there faster
            self._after_receive(encoded, received)
        return {"accepted": counts[Verdict.KEPT], "duplicate": counts[Verdict.DUPLICATE],
                "buffered": counts[Verdict.BUFFERED], "stale": counts[Verdict.STALE],
                "dropped": counts[Verdict.DROPPED] + malformed}

    def answer_round_status(self, status: RoundStatus) -> bytes:
        """A peer's round status: this node's own status, then what the peer lacks of what this node holds."""
        if self.relay.peer_is_ahead(status):
            self._sync_wakeup.set()
        missing = self.relay.answer(status)
        return encode_status_answer(self.relay.status(), [encode_consensus_message(m) for m in missing])

    def _decided_at(self, height: int) -> tuple[bytes, Commit] | None:
        block_bytes, commit = self.store.get_block_bytes(height), self.store.get_commit(height)
        return None if block_bytes is None or commit is None else (block_bytes, commit)

    def receive_peer_txs(self, raw_txs: list[bytes]) -> dict:
        admitted = rejected = known = 0
        for raw in raw_txs:
            try:
                tx = Transaction.decode(raw)
                _, new = self.mempool.add(tx)
                if new:
                    admitted += 1
                else:
                    known += 1
            except (DecodeError, LedgerError, MempoolError):
                rejected += 1
        return {"admitted": admitted, "rejected": rejected, "known": known}

    def admit_client_txs(self, txs: list[Transaction]) -> list[Exception | bool]:
        """Admit a client's transactions: journal them (one fsync), then gossip them.

        Each result is True (new), False (already pending) or the exception
        that refused it.  Nothing is acknowledged before it is on disk.
        """
        results: list[Exception | bool] = []
        fresh: list[bytes] = []
        for tx in txs:
            try:
                if self.store.get_tx_location(tx.txid) is not None:
                    raise AlreadyCommitted("txn-already-committed",
                                           f"transaction {tx.txid.hex()} is already committed", txid=tx.txid.hex())
                _, new = self.mempool.add(tx)
                if new:
                    fresh.append(tx.encoded)
                results.append(new)
            except (LedgerError, MempoolError) as exc:
                results.append(exc)
        self.journal.append(fresh)
        self.gossip.broadcast_txs(fresh)
        return results

    # ------------------------------------------------------------------ waiting (client-centric reads)

    async def wait_for_height(self, height: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.store.height < height:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.height_changed.wait(), remaining)
            except asyncio.TimeoutError:
                return self.store.height >= height
        return True

    async def wait_for_commit(self, txid: bytes, timeout_s: float) -> TxLocation | None:
        location = self.locate(txid)
        if location is not None:
            return location
        assert self.loop is not None
        fut = self.loop.create_future()
        self.commit_waiters.setdefault(txid, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            return self.locate(txid)
        finally:
            waiters = self.commit_waiters.get(txid)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self.commit_waiters[txid]

    def locate(self, txid: bytes) -> TxLocation | None:
        found = self.store.get_tx_location(txid)
        if found is None:
            return None
        height, index = found
        return TxLocation(height, index, self.store.get_block_hash(height))

    # ------------------------------------------------------------------ evidence

    def _load_evidence(self) -> list[dict]:
        path = self.home / EVIDENCE_FILE
        out = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line after a crash
        return out

    def _record_evidence(self, evidence) -> None:
        first, second = evidence.first, evidence.second
        record = {
            "kind": "duplicate-vote",
            "validator": first.validator.hex(),
            "height": first.height,
            "round": first.round,
            "vote_type": first.vote_type.name.lower(),
            "vote_a": {"block_hash": first.block_hash.hex() if first.block_hash else None,
                       "signature": first.signature.hex(), "encoded": first.encode().hex()},
            "vote_b": {"block_hash": second.block_hash.hex() if second.block_hash else None,
                       "signature": second.signature.hex(), "encoded": second.encode().hex()},
            "seen_at_ms": int(time.time() * 1000),
        }
        self.evidence.append(record)
        with open(self.home / EVIDENCE_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("equivocation evidence validator=%s height=%d round=%d type=%s", record["validator"],
                    record["height"], record["round"], record["vote_type"])

    # ------------------------------------------------------------------ block sync

    async def _peer_height(self, link) -> int:
        try:
            response = await link.client.get(link.url + "/p2p/status")
            if response.status_code != 200:
                return -1
            body = response.json()
            if body.get("chain_id") != self.chain_id or body.get("genesis_hash") != self.genesis_hash.hex():
                return -1
            if body.get("protocol") != RELAY_PROTOCOL_VERSION:
                if link.last_error != "protocol":
                    log.warning("peer %s speaks protocol %s, this node %d: run the same ledger-node release on "
                                "every node", link.url, body.get("protocol"), RELAY_PROTOCOL_VERSION)
                    link.last_error = "protocol"
                return -1
            link.height = int(body["height"])
            return link.height
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError):
            return -1

    async def _sync_loop(self) -> None:
        interval = self.config.sync_interval_ms / 1000
        while True:
            try:
                await asyncio.wait_for(self._sync_wakeup.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._sync_wakeup.clear()
            if not self.gossip.links or self.fatal is not None:
                continue
            try:
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a peer's bad answer must never end block sync
                log.exception("block sync round failed")

    async def _sync_once(self) -> None:
        heights = await asyncio.gather(*(self._peer_height(link) for link in self.gossip.links))
        best = max(heights, default=-1)
        self.catching_up = best > self.store.height + 1
        if best <= self.store.height:
            return
        candidates = [link for link, h in zip(self.gossip.links, heights) if h > self.store.height]
        for link in candidates:
            while self.store.height < link.height and self.fatal is None:
                start = self.store.height + 1
                end = min(link.height, start + SYNC_BATCH - 1)
                try:
                    response = await link.client.get(link.url + "/p2p/blocks", params={"from": start, "to": end})
                    if response.status_code != 200:
                        break
                    items = decode_block_batch(response.content)
                except (httpx.HTTPError, OSError, DecodeError, ValueError):
                    break
                if not items:
                    break
                applied, honest = self._apply_synced(items, link)
                if applied == 0 or not honest:
                    break  # the next candidate serves the same heights
            if self.store.height >= best:
                break
        self.catching_up = False

    def _apply_synced(self, items: list[tuple[Block, Commit]], link) -> tuple[int, bool]:
        """Commit, in order, the certified blocks ``link`` served; return (how many, whether the peer was honest).

        A block whose bytes are not the ones its certificate covers (a certificate for another header or
        height, one that does not verify, or a body its header does not commit to: ``check_block_body``) is
        the peer's lie, not this node's problem: the rest of the batch is dropped, the peer is marked down,
        and the caller fetches the same heights from another peer.  Only certified bytes that fail to execute
        here, or execute to another app hash than their header's, are a state divergence.
        """
        applied, honest = 0, True
        for block, commit in items:
            height = block.height
            if height != self.store.height + 1:
                continue
            lie = None
            if commit.block_hash != block.hash or commit.height != height:
                lie = f"its certificate is for block {commit.block_hash.hex()[:16]} at height {commit.height}"
            else:
                try:
                    verify_commit(self.chain_id, self.validators, commit, block.hash, height)
                    check_block_body(block)
                except (CertificateError, BlockError) as exc:
                    lie = f"{exc.code}: {exc.message}"
            if lie is not None:
                log.warning("sync: peer %s served block %d that is not the certified one (%s); dropping the peer "
                            "and fetching these heights from another", link.url, height, lie)
                link._mark(False, f"served an uncertified block {height}")
                honest = False
                break
            try:
                result = self._execute(block)
            except (LedgerError, DecodeError) as exc:
                self._diverge(height, f"certified block fails here: {getattr(exc, 'code', '')} {exc}")
                return applied, True
            self._commit(block, commit, result, commit.round)
            applied += 1
        if applied:
            self.mempool.recheck()
            log.info("block sync applied=%d height=%d", applied, self.store.height)
            self._start_height(self.store.height + 1)
        return applied, honest

    async def _status_loop(self, link) -> None:
        """The round-state exchange with one peer: send it this node's status, take what it says is missing.

        What one peer does never delays the exchange with another (one task per peer)."""
        period = STATUS_INTERVAL_MS / 1000
        while True:
            await asyncio.sleep(period)
            if self.fatal is not None or not self.driver.started:
                continue
            try:
                response = await link.client.post(link.url + "/p2p/round-state", content=self.relay.status().encode(),
                                                   headers={"content-type": "application/octet-stream"})
                if response.status_code != 200:
                    continue
                status, messages = decode_status_answer(response.content)
            except (httpx.HTTPError, OSError, DecodeError, ValueError):
                continue
            if self.relay.peer_is_ahead(status):
                self._sync_wakeup.set()
            self.receive_consensus(messages)

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        height = self.store.height
        header = self.store.get_header(height) if height > 0 else None
        return {
            "chain_id": self.chain_id,
            "node_name": self.config.name,
            "validator_address": self.key_address_text(),
            "is_validator": self.is_validator,
            "height": height,
            "latest_block_hash": (self.store.get_block_hash(height) or ZERO_HASH).hex() if height > 0 else None,
            "latest_block_time_ms": header.time_ms if header else None,
            "app_hash": self.store.app_hash.hex(),
            "genesis_hash": self.genesis_hash.hex(),
            "catching_up": self.catching_up,
            "consensus": {"height": self.driver.height, "round": self.driver.round, "step": self.driver.step.name.lower()},
            "mempool": {"size": len(self.mempool), "bytes": self.mempool.total_bytes},
            "peers": [{"url": link.url, "up": link.up, "height": link.height} for link in self.gossip.links],
            "clock": {"offset_ms": self.clock_offset_ms, "skewed": self.clock_skewed,
                      "warn_ms": self.config.clock_skew_warn_ms, "validators_seen": len(self._peer_clock_offsets),
                      "injected_offset_ms": self.config.clock_offset_ms},
        }

    def key_address_text(self) -> str:
        from node.crypto import encode_address
        return encode_address(self.address)
