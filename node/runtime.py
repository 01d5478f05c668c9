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
from node.consensus.messages import Commit, Proposal, Vote, proposal_digest, vote_digest
from node.consensus.signer import DurableSigner
from node.consensus.wal import FileWAL
from node.crypto import verify_signature
from node.encoding import DecodeError, Reader
from node.home import load_key_file
from node.ledger.blocks import ZERO_HASH, Block, Header, commit_hash
from node.ledger.errors import BlockError, LedgerError, TxError
from node.ledger.rules import BlockBuilder, BlockResult, SignatureCache, execute_block
from node.ledger.store import Store
from node.ledger.transactions import Transaction
from node.mempool import AlreadyCommitted, Mempool, MempoolError, MempoolJournal
from node.metrics import NodeMetrics
from node.p2p.gossip import Gossip
from node.p2p.wire import decode_block_batch, encode_consensus_message

log = logging.getLogger("ledger.node")

SYNC_BATCH = 50
MAX_EXECUTED_CACHE = 64
MAX_SEEN_MESSAGES = 50_000
EVIDENCE_FILE = "evidence.jsonl"
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
            wal=self.wal,
        )
        self.own_url = f"http://{config.host}:{config.port}"
        self.gossip = Gossip(list(config.peers), self.own_url, config.gossip_batch_txs, config.gossip_flush_ms,
                             config.gossip_queue_max, config.peer_timeout_ms)
        self.metrics = NodeMetrics(self)
        self.executed: collections.OrderedDict[bytes, tuple[Block, BlockResult]] = collections.OrderedDict()
        self.last_commit: Commit | None = self.store.get_commit(self.store.height) if self.store.height > 0 else None
        self.seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.own_messages: list[bytes] = []
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
        self._tasks.append(asyncio.create_task(self._rebroadcast_loop(), name="rebroadcast"))
        self._run_actions(self.driver.start_height(self.store.height + 1))
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
        # a block this node proposed or already validated is not decoded again
        try:
            cached = self.executed.get(self._value_id(value))
        except (DecodeError, ValueError):
            cached = None
        if cached is not None and cached[0].encoded == value:
            return cached[0]
        return Block.decode(value, known=self.mempool.by_encoded)

    def _value_id(self, value: bytes) -> bytes:
        r = Reader(value)
        return Header.decode(r.var_bytes(1024)).hash

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
        prev_time = self._parent_time(height)
        if header.time_ms <= prev_time:
            raise BlockError("bad-blk-time", f"block time {header.time_ms} is not after {prev_time}")
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

    def _execute(self, block: Block) -> BlockResult:
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
        prev_time = self._parent_time(height)
        header = Header(
            chain_id=self.chain_id,
            height=height,
            time_ms=max(int(time.time() * 1000), prev_time + 1),
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
                self._mark_seen(encoded)
                if message.height == self.driver.height:
                    self.own_messages.append(encoded)
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
        self._schedule_next_height(decision.height, decision.commit)

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
        self.own_messages = []
        self._run_actions(self.driver.start_height(decided + 1))

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

    def _mark_seen(self, encoded: bytes) -> bool:
        digest = hashlib.sha256(encoded).digest()
        if digest in self.seen:
            return False
        self.seen[digest] = None
        if len(self.seen) > MAX_SEEN_MESSAGES:
            self.seen.popitem(last=False)
        return True

    def _authentic(self, message: Proposal | Vote) -> bool:
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        validator = self.validators.get(signer)
        if validator is None:
            return False
        if isinstance(message, Proposal):
            digest = proposal_digest(self.chain_id, message.height, message.round, message.pol_round,
                                     message.block_hash)
        else:
            digest = vote_digest(self.chain_id, message.vote_type, message.height, message.round,
                                 message.block_hash)
        return verify_signature(validator.public_key, digest, message.signature)

    def receive_consensus(self, messages: list[tuple[Proposal | Vote | DecodeError, bytes]]) -> dict:
        """Messages from a peer, each with its framed bytes: drop the bad, re-flood the new, feed the driver."""
        accepted = dropped = duplicate = 0
        for message, encoded in messages:
            if isinstance(message, DecodeError):
                dropped += 1
                continue
            if not self._mark_seen(encoded):
                duplicate += 1
                continue
            if message.height + 1 < self.driver.height or not self._authentic(message):
                dropped += 1
                continue
            if message.height > self.driver.height + 1 or (
                    message.height > self.store.height + 1 and self.store.height + 1 != self.driver.height):
                self._sync_wakeup.set()
            self.gossip.broadcast_consensus(encoded)
            accepted += 1
            if self.fatal is not None:
                continue
            if isinstance(message, Proposal):
                actions = self.driver.on_proposal(message)
            else:
                actions = self.driver.on_vote(message)
            self._run_actions(actions)
        return {"accepted": accepted, "dropped": dropped, "duplicate": duplicate}

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
                applied = self._apply_synced(items)
                if applied == 0:
                    break
            if self.store.height >= best:
                break
        self.catching_up = False

    def _apply_synced(self, items: list[tuple[Block, Commit]]) -> int:
        applied = 0
        for block, commit in items:
            height = block.height
            if height != self.store.height + 1:
                continue
            if commit.block_hash != block.hash or commit.height != height:
                log.warning("sync: certificate does not match block height=%d", height)
                return applied
            try:
                verify_commit(self.chain_id, self.validators, commit, block.hash, height)
            except CertificateError as exc:
                log.warning("sync: bad certificate height=%d: %s", height, exc)
                return applied
            try:
                result = self._execute(block)
            except (LedgerError, DecodeError) as exc:
                self._diverge(height, f"certified block fails here: {getattr(exc, 'code', '')} {exc}")
                return applied
            self._commit(block, commit, result, commit.round)
            applied += 1
        if applied:
            self.mempool.recheck()
            self.own_messages = []
            log.info("block sync applied=%d height=%d", applied, self.store.height)
            self._run_actions(self.driver.start_height(self.store.height + 1))
        return applied

    async def _rebroadcast_loop(self) -> None:
        """Liveness under loss: if a height stalls, send this node's messages for it again."""
        period = max(self.params.timeout_propose_ms, 1000) / 1000
        last_height = -1
        while True:
            await asyncio.sleep(period)
            if self.driver.height == last_height and self.own_messages:
                for encoded in self.own_messages[-32:]:
                    self.gossip.broadcast_consensus(encoded)
            last_height = self.driver.height

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
        }

    def key_address_text(self) -> str:
        from node.crypto import encode_address
        return encode_address(self.address)
