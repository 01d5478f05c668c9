"""The node runtime: one process, one event loop, wiring the three concerns.

    clients --REST--> api ---------> mempool ---txs channel--> peers
                                       |  (dissemination)
    peers --consensus channel--> relay -> ConsensusDriver (sans-IO)  (commit)
                                       |  Decide
                                       v
                      rules.execute_block -> Store.commit_block  (execution)

Everything runs on the asyncio loop: the consensus driver is called with
events and returns actions that the node carries out (broadcast, timers,
commit: ``driver_actions``, which ``Node`` mixes in; the commit path is
here).  Block sync runs beside it and feeds certified blocks from peers
through the same commit path.  The parts it wires: ``application`` (what the
driver asks of the ledger), the peer transport (``node.p2p``: switch,
reactor), ``consensus_io`` (the relay's I/O), ``sync``,
``admission`` (into the mempool), ``waiters``, ``evidence``, ``clock`` and
the status view (``node.status``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path

from genesis.document import genesis_hash
from node.admission import JOURNAL_FILE, Admission
from node.application import Application
from node.config import DATA_DIR, GENESIS_FILE, KEY_FILE, SIGNER_FILE, WAL_FILE, NodeConfig
from node.consensus.driver import ConsensusDriver, TimeoutParams
from node.consensus.relay import Relay
from node.consensus.signer import DurableSigner
from node.consensus.wal import FileWAL
from node.driver_actions import DriverActions
from node.encoding import DecodeError
from node.evidence import EVIDENCE_FILE, EvidenceLog
from node.gc_policy import SURVIVOR_FREEZER
from node.height_timeline import HeightTimeline, format_phases
from node.home import load_key_file
from node.ledger.errors import ReconfigError
from node.ledger.rules import BlockResult, SignatureCache
from node.ledger.store import Store
from node.loop_watch import LoopWatch
from node.maintenance import StoreMaintenance
from node.memory import release_memory_periodically
from node.mempool import Mempool, MempoolJournal
from node.metrics import NodeMetrics
from node.p2p.consensus_io import ConsensusIO, decided_block
from node.p2p.reactor import PeerReactor
from node.p2p.setup import build_reactor
from node.reconfig_pool import REANNOUNCE_S, ReconfigPool
from node.snapshots import SNAPSHOTS_DIR, SnapshotStore, serve_snapshot
from node.stages import CLOCK
from node.state_sync_home import BLOCKS_DIR, state_sync_dir
from node.state_sync_switch import StateSyncSwitch
from node.status import ClockWatch
from node.sync import BlockSync
from node.thread_priority import lower_background_threads
from node.types.block import Block
from node.types.commit import Commit
from node.types.reconfig import decode_pool_item
from node.types.validators import ValidatorSet
from node.waiters import Waiters

log = logging.getLogger("ledger.node")


GENESIS_FILE_DIGEST = "genesis_file_sha256"
ALONE_WARNING_INTERVAL_S = 60.0
"""A node with no peer up and no quorum alone says so this often."""


class StateDivergence(RuntimeError):
    """This node's execution disagrees with a block +2/3 of the validators committed."""

    code = "state-divergence"


class Node(DriverActions):
    """A validator (or full node, when its key is not in genesis).

    The driver's actions and the start of each height come from ``DriverActions``."""

    def __init__(self, home: Path, config: NodeConfig):
        self.home = Path(home)
        self.config = config
        self.store = Store.open(str(self.home / DATA_DIR))
        self.genesis, self.genesis_hash = self._load_genesis()
        self.chain_id = self.genesis.chain_id
        self.params = self.genesis.params
        if self.store.validator_state is None:
            self.store.close()
            raise RuntimeError(f"the store in {self.home / DATA_DIR} holds no validator state; re-run init")
        self.key = load_key_file(self.home / KEY_FILE)
        self.address = self.key.address
        self.sig_cache = SignatureCache()
        expiry = config.mempool_expiry_blocks or self.params.mempool_expiry_blocks
        self.mempool = Mempool(self.store, self.chain_id, self.sig_cache, config.mempool_max_txs,
                               config.mempool_max_bytes, expiry, self.store.height)
        self.journal = MempoolJournal(str(self.home / JOURNAL_FILE))
        self.peers = self._build_peers()
        self.node_id = self.peers.switch.node_id
        self._consensus_arrivals = asyncio.Event()
        self._work_arrivals = asyncio.Event()
        self.admission = Admission(self.store, self.mempool, self.journal, self.peers.broadcast_txs,
                                   added=self._on_work_arrival)
        self.admission.recover_journal()
        self.signer = DurableSigner(str(self.home / SIGNER_FILE), self.key.private_key, self.chain_id)
        """Signs only at heights whose validator set holds this node's key (the driver decides)."""
        self.wal = FileWAL(str(self.home / WAL_FILE))
        self.clock = ClockWatch(self.address, lambda: self.config)
        self.reconfig_pool = ReconfigPool(lambda: self.store.validator_state, self.chain_id,
                                          relay=self.peers.broadcast_reconfig)
        self.application = Application(self.store, self.mempool, chain_id=self.chain_id, params=self.params,
                                       genesis_time_ms=self.genesis.genesis_time_ms, proposer=self.address,
                                       sig_cache=self.sig_cache, reconfig_pool=self.reconfig_pool)
        self.driver = ConsensusDriver(
            chain_id=self.chain_id,
            validators=self.validators,
            signer=self.signer,
            params=TimeoutParams(self.params.timeout_propose_ms, self.params.timeout_prevote_ms,
                                 self.params.timeout_precommit_ms, self.params.timeout_delta_ms),
            is_valid=CLOCK.wrap("validate", self.application.is_valid),
            value_id=self.application.value_id,
            get_value=self._proposal_value,
            now_ms=self.clock.now_ms,
            wal=self.wal,
            value_time=self.application.value_time,
            validators_of=self.application.validators_at,
        )
        self.metrics = NodeMetrics(self)
        self.relay = Relay(self.driver, functools.partial(decided_block, self.store))
        self.consensus_io = ConsensusIO(self.relay, self.driver, self.peers, run_actions=self._run_actions,
                                        failed=self._failed, peers_ahead=lambda: self.sync.wake(),
                                        arrived=self._on_consensus_arrival)
        self.sync = BlockSync(chain_id=self.chain_id, genesis_hash=self.genesis_hash,
                              store=self.store, peers=self.peers, application=self.application,
                              mempool=self.mempool, commit=self._commit, diverge=self._diverge,
                              start_height=self._start_consensus, failed=self._failed,
                              interval_ms=config.sync_interval_ms, behind_pruned=self._behind_pruned,
                              collected=state_sync_dir(self.home) / BLOCKS_DIR)
        self.waiters = Waiters(self.store)
        self.evidence = EvidenceLog(self.home / EVIDENCE_FILE)
        self.snapshots = SnapshotStore(self.home / SNAPSHOTS_DIR, config.snapshot_keep)
        self.maintenance = StoreMaintenance(self.store, self.snapshots, config)
        self.peers.on_txs = CLOCK.wrap("admit_peer", self.admission.receive_peer_txs)
        self._build_value = CLOCK.wrap("propose", self.application.get_value)
        self.peers.on_reconfig = self._receive_reconfig
        self.peers.reconfig_pool = self.reconfig_pool.encoded
        self.peers.serve_snapshot = functools.partial(serve_snapshot, self.snapshots)
        self.peers.on_consensus = CLOCK.wrap("consensus", self.consensus_io.receive_consensus)
        self.peers.on_round_status = CLOCK.wrap("consensus", self.consensus_io.answer_round_status)
        self.peers.on_peer_height = self._on_peer_height
        self.peers.own_height = lambda: (self.store.height, self.store.earliest_height)
        self.started_at = time.time()
        self.last_block_time = time.monotonic()
        self.timeline = HeightTimeline()
        self.loop_watch = LoopWatch()
        """Stalls of this node's event loop (``node.loop_watch``)."""
        """This node's steps at the height being decided (``node.height_timeline``)."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._next_height_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: list[asyncio.TimerHandle] = []
        self.fatal: BaseException | None = None
        self.switch_to_state_sync = StateSyncSwitch(self)
        self._stop_event = asyncio.Event()

    def _proposal_value(self, height: int, round_: int) -> bytes:
        """The block this node proposes, built after the peers' queued transactions are admitted (for at most
        ``tx_intake.BEFORE_PROPOSAL_S``), so it can take what this node has received."""
        self.peers.tx_intake.admit_for()
        return self._build_value(height, round_)

    @property
    def validators(self) -> ValidatorSet:
        """The validator set of the next height (it changes by committed reconfiguration inputs)."""
        return self.application.validators

    @property
    def is_validator(self) -> bool:
        """Whether this node's key is in the set of the next height (it signs only then)."""
        return self.address in self.application.validators

    def _receive_reconfig(self, raw_items: list[bytes]) -> None:
        """Reconfiguration inputs a peer relayed: pooled (and relayed on) when valid, dropped otherwise."""
        for raw in raw_items:
            try:
                self.reconfig_pool.admit(decode_pool_item(raw))
            except (ReconfigError, DecodeError) as exc:
                log.debug("peer reconfiguration input dropped: %s", exc)

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

    def _build_peers(self) -> PeerReactor:
        """The peer transport (``node.p2p.setup.build_reactor``); the validators of the next heights get in."""

        def validator_keys() -> list[bytes]:  # the sets of the next heights: a validator that joins gets in
            state = self.store.validator_state
            if state is None:
                return []
            return [v.public_key for v in (*state.current.validators, *state.next.validators)]
        return build_reactor(self.config, self.key.private_key, self.chain_id, self.genesis_hash, validator_keys,
                             self._serve_block)

    def _serve_block(self, height: int) -> tuple[bytes, bytes] | None:
        block_bytes, commit = self.store.get_block_bytes(height), self.store.get_commit(height)
        return None if block_bytes is None or commit is None else (block_bytes, commit.encode())

    def alone_problem(self) -> str:
        """Why this node cannot make progress by itself right now ("" when it can, or has peers)."""
        if self.peers.peers_up > 0:
            return ""
        own = self.validators.get(self.address)
        if own is not None and 3 * own.power > 2 * self.validators.total_power:
            return ""  # it holds a quorum alone
        if not self.config.peers:
            return ("no peers configured and no quorum alone: set peers = [\"NODEID@host:p2p_port\", ...] in "
                    "config.toml (`ledger-node id --home HOME` on each peer prints its address)")
        return (f"none of its {len(self.config.peers)} peers is connected and it holds no quorum alone: are they "
                f"running, and is {self.config.host}:{self.config.p2p_port} reachable from them? "
                f"(`ledger-node status --home HOME` lists each peer's last error)")

    async def _watch_alone(self) -> None:
        """Say, once a minute, when this node has no peer up and no quorum alone (it cannot make progress)."""
        while True:
            await asyncio.sleep(ALONE_WARNING_INTERVAL_S)
            problem = self.alone_problem()
            if problem and self.fatal is None:
                log.warning("height %d, waiting: %s", self.store.height, problem)

    async def _reannounce_reconfig(self) -> None:
        """Send the whole reconfiguration pool to every peer again now and then: one that was behind (the signer
        not a member yet at its height) or away gets it (peers drop what they hold already)."""
        while True:
            await asyncio.sleep(REANNOUNCE_S)
            pooled = self.reconfig_pool.encoded()
            if pooled:
                self.peers.broadcast_reconfig(pooled)

    def _on_peer_height(self, link) -> None:
        if link.height > self.store.height + 1:
            self.sync.wake()

    @property
    def genesis_path(self) -> Path:
        """The genesis file this node checked at start (``GET /v1/genesis`` serves it as it is)."""
        return self.home / GENESIS_FILE

    # ------------------------------------------------------------------ lifecycle

    async def bind(self) -> None:
        """Bind the p2p port (``OSError`` when it is taken); nothing else has started yet."""
        await self.peers.switch.listen()

    def start_consensus(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.peers.switch.start_dialing()
        self._tasks.append(asyncio.create_task(self.sync.run(), name="block-sync"))
        self._tasks.append(asyncio.create_task(self.consensus_io.status_loop(), name="round-state"))
        self._tasks.append(asyncio.create_task(self._watch_alone(), name="alone-watch"))
        self._tasks.append(asyncio.create_task(self._reannounce_reconfig(), name="reconfig-reannounce"))
        self._tasks.append(asyncio.create_task(self.loop_watch.run(), name="loop-watch"))
        self._tasks.append(asyncio.create_task(self.peers.tx_intake.run(), name="peer-tx-intake"))
        self._tasks.append(asyncio.create_task(release_memory_periodically(), name="release-memory"))
        self._tasks.append(asyncio.create_task(lower_background_threads(), name="background-priority"))
        self._tasks.append(asyncio.create_task(SURVIVOR_FREEZER.run(self.config.gc_refreeze_s), name="gc-refreeze"))
        if self.config.create_empty_blocks_ms == 0:  # no empty blocks: not even the first height's
            self._next_height_task = asyncio.create_task(self._start_first_height())
        else:
            self._start_consensus(self.store.height + 1)
        log.info("node started name=%s id=%s chain=%s height=%d validator=%s p2p=%s:%d peers=%d", self.config.name,
                 self.node_id, self.chain_id, self.store.height, self.is_validator, self.config.host,
                 self.config.p2p_port, len(self.config.peers))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._next_height_task is not None:
            self._next_height_task.cancel()
        self.switch_to_state_sync.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # the task had died of it; stopping goes on
                log.exception("task %s had failed", task.get_name())
        await self.peers.switch.stop()
        await self.maintenance.stop()
        self.journal.close()
        self.store.close()
        log.info("node stopped name=%s height=%d", self.config.name, self.store.height)

    def request_stop(self, error: BaseException | None = None) -> None:
        if error is not None and self.fatal is None:
            self.fatal = error
        self._stop_event.set()

    async def wait_stopped(self) -> None:
        """Return once a stop was requested (a signal, or ``fatal``: the node cannot go on)."""
        await self._stop_event.wait()

    @property
    def restart_for_state_sync(self) -> bool:
        """Whether the node stopped to fetch a snapshot (``ledger-node start`` then executes itself again)."""
        return self.switch_to_state_sync.restarting

    def _failed(self) -> bool:
        return self.fatal is not None

    # ------------------------------------------------------------------ commit

    def _commit(self, block: Block, commit: Commit, result: BlockResult, round_: int) -> None:
        """Write the block; wake everyone waiting on it."""
        with CLOCK.stage("commit"):
            self._write_commit(block, commit, result, round_)

    def _write_commit(self, block: Block, commit: Commit, result: BlockResult, round_: int) -> None:
        started = time.monotonic()
        self.store.commit_block(block, commit, result)
        self.application.on_commit(commit)
        self.reconfig_pool.after_commit()
        self.mempool.update(block.height, list(block.txs))
        self.journal.on_commit(self.mempool)
        now = time.monotonic()
        interval = now - self.last_block_time
        self.last_block_time = now
        phases = self.timeline.phases(now)
        self.timeline = HeightTimeline(committed=now)
        self.metrics.on_commit(block, round_, interval, phases)
        self.maintenance.on_commit(block)
        self.waiters.on_commit(block)
        self.peers.broadcast_height()
        log.log(logging.INFO if block.txs else logging.DEBUG,
                "committed height=%d txs=%d round=%d hash=%s interval_ms=%d write_ms=%.1f mempool=%d %s",
                 block.height, len(block.txs), round_, block.hash.hex()[:16], interval * 1000,
                 (time.monotonic() - started) * 1000, len(self.mempool), format_phases(phases))

    def _behind_pruned(self, earliest: int) -> None:
        """Every peer ahead says it serves blocks from ``earliest`` only: see ``node.state_sync_switch``."""
        self.switch_to_state_sync.consider(earliest)

    def _diverge(self, height: int, reason: str) -> None:
        error = StateDivergence(f"state divergence at height {height}: {reason}; this node's state disagrees "
                                f"with what +2/3 of the validators committed. Stopping.")
        log.critical("%s", error)
        self.request_stop(error)
