"""State sync: a node copies a recent snapshot from its peers instead of replaying every block.

Run by ``ledger-node start`` before the node itself (``node.state_sync_home``
says when: an empty store with ``state_sync`` set, or a node that found every
peer had pruned the blocks it lacks).  It brings up the node's own peer
transport (``node.p2p.setup``), asks every peer which snapshots it offers,
and takes the highest one above the node's own height that checks out:

1. the anchor (block H, its certificate, the validator-set changes from
   genesis) is walked from the genesis in the home (``node.light_client``);
2. the manifest must be about that certified header (``check_manifest``);
3. the chunks are fetched from every peer that offers the snapshot at
   once; each is checked against the manifest as it arrives, and a peer
   whose chunk does not match, or that does not answer, is dropped and the
   chunk asked of another;
4. meanwhile the blocks after H are collected (``node.block_collector``);
5. the MuHash of all outputs must be the certified app hash (only a
   manifest's header fields are certified, not its chunk list: when they do
   not hash to it, its chunks are deleted and none of the peers that offered
   it is asked again in this run, so a peer that forges snapshots costs one
   try);
6. only then is the state written, beside the old one, and swapped in
   (``state_sync_home.swap_in``); the node starts at height H and applies
   the collected blocks, then block-syncs from there.

Chunks are kept under ``HOME/statesync/chunks`` as they arrive (checked, by
content hash, synced before they take their name), so a transfer interrupted
by a crash resumes with what it has (a kept chunk that no longer checks out
is fetched again); chunks the node already holds in its own snapshots (a node
that was away and returns) are not fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from node.block_collector import BlockCollector
from node.config import DATA_DIR, NodeConfig
from node.crypto import sha256
from node.ledger.errors import SNAPSHOT_APP_HASH, SnapshotError
from node.ledger.muhash import MuHash
from node.ledger.snapshot import (
    Manifest,
    check_app_hash,
    chunk_muhash,
    decode_chunk,
)
from node.ledger.store import Store
from node.p2p import snapshot_wire
from node.p2p.peer_link import PeerLink
from node.p2p.setup import build_reactor
from node.runtime import GENESIS_FILE_DIGEST
from node.snapshot_offers import blocks_follow, fetch_anchor, list_offers, own_next_set_hash
from node.snapshots import SNAPSHOTS_DIR, SnapshotStore
from node.state_sync_home import (
    BLOCKS_DIR,
    CHUNKS_DIR,
    clear_request,
    finish_swap,
    needs_state_sync,
    new_store_path,
    record_failure,
    state_sync_dir,
    swap_in,
)
from node.types.validators import ValidatorSet

log = logging.getLogger("ledger.statesync")

PEER_WAIT_S = 60.0
"""How long state sync waits for a peer that offers a snapshot before it gives up."""
REQUESTS_PER_PEER = 1
"""A peer answers one snapshot request at a time (``PeerReactor._on_snapshot``): ask it one at a time."""
MAX_FAILURES = 3
"""Unanswered requests after which a peer is left out of this transfer."""


class StateSyncFailed(Exception):
    """No snapshot could be fetched and checked; the message says why (the node did not start)."""


@dataclass
class Transfer:
    """What one state sync did, for the log and the operator."""

    height: int = 0
    """The snapshot's height."""
    chunks_fetched: int = 0
    chunks_skipped: int = 0
    """Chunks already on disk (an interrupted transfer, or this node's own older snapshots)."""
    bytes_fetched: int = 0
    """Compressed chunk bytes received."""
    peers_dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0


class StateSync:
    """One node's state sync (see the module docstring)."""

    def __init__(self, home: Path, config: NodeConfig, *, chain_id: str, genesis_hash: bytes, genesis_doc: bytes,
                 genesis_set: ValidatorSet, private_key: bytes, above: int = 0, own_next_set: bytes | None = None):
        """``above``: the height of the state the node has (only a snapshot above it is worth taking) and
        ``own_next_set`` the hash of the validator set it holds for ``above + 1``: a snapshot's proof from genesis
        must pass through that set (``check_anchor_from``)."""
        self.home = Path(home)
        self.config = config
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.genesis_doc = genesis_doc
        self.genesis_set = genesis_set
        self.private_key = private_key
        self.above = above
        self.own_next_set = own_next_set
        self.folder = state_sync_dir(self.home) / CHUNKS_DIR
        self.own = SnapshotStore(self.home / SNAPSHOTS_DIR)
        self.transfer = Transfer()
        self.genesis_file_digest: bytes | None = None
        """SHA-256 of the home's genesis file, recorded with the state (as ``init`` does)."""

    # ------------------------------------------------------------------ run

    async def run(self) -> Transfer:
        started = time.monotonic()
        reactor = build_reactor(self.config, self.private_key, self.chain_id, self.genesis_hash,
                                lambda: [v.public_key for v in self.genesis_set], lambda height: None)
        await reactor.switch.listen()
        reactor.switch.start_dialing()
        self._collecting: asyncio.Task | None = None
        try:
            manifest, block, commit, validators, state, parts = await self._fetch(reactor)
            self._restore(manifest, block, commit, validators, state, parts)
        finally:
            if self._collecting is not None:
                self._collecting.cancel()
                await asyncio.gather(self._collecting, return_exceptions=True)
            await reactor.switch.stop()
        swap_in(self.home)
        self.transfer.seconds = time.monotonic() - started
        return self.transfer

    async def _fetch(self, reactor):
        deadline = time.monotonic() + PEER_WAIT_S
        tried: set[bytes] = set()
        distrusted: set[str] = set()
        """Peers that offered a snapshot whose outputs did not hash to its certified app hash: only the chunk
        list of a manifest is not certified, and each such try costs the whole transfer, so none of their
        offers is taken again in this run."""
        while time.monotonic() < deadline:
            offers = await list_offers(reactor, self.chain_id)
            candidates = [(manifest, [link for link in links if link.node_id not in distrusted])
                          for manifest, links in offers.values()]
            # The highest first; of one height, the manifest most peers offer (honest peers' snapshots of one
            # height are the same bytes, a forged chunk list is one peer's).
            for manifest, links in sorted(candidates, key=lambda item: (-item[0].height, -len(item[1]))):
                if not links or manifest.hash in tried or manifest.height <= self.above \
                        or not blocks_follow(reactor, manifest.height):
                    continue
                tried.add(manifest.hash)
                try:
                    return await self._take(reactor, manifest, links)
                except SnapshotError as exc:
                    log.warning("state sync: the snapshot at height %d offered by %s does not check out: %s",
                                manifest.height, ", ".join(link.name for link in links), exc)
                    if exc.code == SNAPSHOT_APP_HASH:
                        distrusted.update(link.node_id for link in links)
                        self._forget(manifest)
            await asyncio.sleep(0.5)
        raise StateSyncFailed(f"no peer offered a snapshot above height {self.above} that checks out, with a peer "
                              f"serving the blocks after it, within {PEER_WAIT_S:g} s (peers: "
                              f"{len(reactor.switch.links)} known, {reactor.peers_up} up); is `peers` set, and do "
                              f"the peers take snapshots (snapshot_interval)?")

    async def _take(self, reactor, manifest: Manifest, links: list[PeerLink]):
        anchor = await fetch_anchor(reactor, manifest, links, self.chain_id, self.genesis_set,
                                    (self.above, self.own_next_set) if self.own_next_set is not None else None)
        if anchor is None:
            raise SnapshotError("snapshot-header", "no peer served an anchor that checks out from the genesis")
        block, commit, validators, state = anchor
        self.transfer.height = manifest.height
        if self._collecting is not None:  # a snapshot before this one did not check out
            self._collecting.cancel()
        collector = BlockCollector(reactor, state_sync_dir(self.home) / BLOCKS_DIR, manifest.height)
        self._collecting = asyncio.create_task(collector.run(), name="collect-blocks")
        parts = await self._chunks(reactor, manifest, links)
        check_app_hash(manifest, parts)
        return manifest, block, commit, validators, state, parts

    # ------------------------------------------------------------------ chunks

    async def _held(self, index: int, manifest: Manifest) -> MuHash | None:
        """The MuHash of chunk ``index`` when this node holds it already (checked), else None.  A copy from an
        earlier transfer that does not check out (a power cut can leave a file empty) is deleted, so the chunk
        is fetched and saved again."""
        ref = manifest.chunks[index]
        data = self._read(ref.hash)
        if data is not None:
            try:
                return await asyncio.to_thread(check_chunk, index, data, ref, manifest.height)
            except SnapshotError:
                (self.folder / ref.hash.hex()).unlink(missing_ok=True)
        data = self.own.read_chunk(ref.hash)
        if data is not None:
            try:
                part = await asyncio.to_thread(check_chunk, index, data, ref, manifest.height)
            except SnapshotError:
                return None
            await asyncio.to_thread(self._save, ref.hash, data)
            return part
        return None

    def _read(self, chunk_hash: bytes) -> bytes | None:
        try:
            return (self.folder / chunk_hash.hex()).read_bytes()
        except FileNotFoundError:
            return None

    def _save(self, chunk_hash: bytes, data: bytes) -> None:
        """Keep a checked chunk: synced before it takes its name, so a crash leaves the whole chunk or none."""
        path = self.folder / chunk_hash.hex()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    def _keep_only(self, manifest: Manifest) -> None:
        """Delete the kept chunks ``manifest`` does not name (and ``.tmp`` files a crash left): what an earlier
        transfer left, a forged one's included when it ended before its app hash was checked (a peer withheld a
        chunk), so the folder holds at most one manifest's chunks."""
        if not self.folder.exists():
            return
        named = {ref.hash.hex() for ref in manifest.chunks}
        for path in self.folder.iterdir():
            if path.name not in named and path.is_file():
                path.unlink(missing_ok=True)

    def _forget(self, manifest: Manifest) -> None:
        """Delete the chunks kept for ``manifest``, whose outputs did not hash to its certified app hash: a peer
        that serves such snapshots cannot fill the disk (chunks it shares with an honest snapshot are fetched
        again)."""
        for ref in manifest.chunks:
            (self.folder / ref.hash.hex()).unlink(missing_ok=True)

    async def _chunks(self, reactor, manifest: Manifest, links: list[PeerLink]) -> list[MuHash]:
        await asyncio.to_thread(self._keep_only, manifest)
        parts: list[MuHash | None] = [None] * len(manifest.chunks)
        todo: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(manifest.chunks)):
            held = await self._held(index, manifest)
            if held is not None:
                parts[index] = held
                self.transfer.chunks_skipped += 1
            else:
                todo.put_nowait(index)
        if todo.empty():
            return [p for p in parts if p is not None]
        live = set(links)
        failures: dict[PeerLink, int] = {}

        async def worker(link: PeerLink) -> None:
            while link in live and not todo.empty():
                index = todo.get_nowait()
                ref = manifest.chunks[index]
                data = await reactor.request_snapshot(link, snapshot_wire.CHUNK_REQUEST, ref.hash)
                if not data:
                    todo.put_nowait(index)
                    failures[link] = failures.get(link, 0) + 1
                    if failures[link] >= MAX_FAILURES:
                        self._drop(live, link, "it does not answer chunk requests")
                    continue
                try:  # (in a worker thread: a full chunk takes about half a second)
                    part = await asyncio.to_thread(check_chunk, index, data, ref, manifest.height)
                except SnapshotError as exc:
                    todo.put_nowait(index)
                    self._drop(live, link, f"it served chunk {index} that does not match the manifest ({exc.code})")
                    continue
                await asyncio.to_thread(self._save, ref.hash, data)  # (an fsync: off the event loop)
                parts[index] = part
                self.transfer.chunks_fetched += 1
                self.transfer.bytes_fetched += len(data)

        while not todo.empty():
            if not live:
                raise SnapshotError("snapshot-chunk", "every peer offering the snapshot was dropped; chunks kept "
                                                      "so far are reused on the next try")
            await asyncio.gather(*(worker(link) for link in list(live) for _ in range(REQUESTS_PER_PEER)))
        return [p for p in parts if p is not None]

    def _drop(self, live: set[PeerLink], link: PeerLink, why: str) -> None:
        if link in live:
            live.discard(link)
            self.transfer.peers_dropped.append(link.name)
            log.warning("state sync: leaving out peer %s: %s", link.name, why)

    # ------------------------------------------------------------------ write

    def _restore(self, manifest: Manifest, block, commit, validators: ValidatorSet, state, parts: list[MuHash]):
        data = new_store_path(self.home)
        shutil.rmtree(data, ignore_errors=True)  # a restore a crash cut short: start it again
        data.parent.mkdir(parents=True, exist_ok=True)
        total = MuHash()
        for part in parts:
            total.combine(part)

        def outputs() -> Iterator[list]:
            for index, ref in enumerate(manifest.chunks):
                raw = self._read(ref.hash)
                if raw is None:
                    raise SnapshotError("snapshot-chunk", f"chunk {index} went missing from {self.folder}")
                yield decode_chunk(index, raw, ref, manifest.height)

        with Store.open(str(data)) as store:
            store.restore_snapshot(chain_id=self.chain_id, genesis_hash=self.genesis_hash,
                                   genesis_doc=self.genesis_doc, block=block, commit=commit, validators=validators,
                                   state=state, muhash=total, chunks=outputs())
            if self.genesis_file_digest is not None:  # the node need not parse the genesis file again at start
                store.put_meta(GENESIS_FILE_DIGEST, self.genesis_file_digest)


def check_chunk(index: int, data: bytes, ref, height: int) -> MuHash:
    """The MuHash of a chunk's outputs, once it checks out against the manifest's ``ref`` (``decode_chunk``)."""
    return chunk_muhash(decode_chunk(index, data, ref, height))


def _keep_old_state(home: Path, height: int, exc: BaseException) -> None:
    count = record_failure(home)
    clear_request(home)
    log.error("state sync failed (%s); starting with the state at height %d (%d failure(s) in a row: the node waits "
              "longer before it tries again)", exc, height, count)


async def sync_home(home: Path, config: NodeConfig) -> Transfer | None:
    """State-sync ``home`` when it needs it (``state_sync_home.needs_state_sync``: an empty store with
    ``state_sync`` set, or a request the node made when every peer had pruned the blocks it lacks); None when the
    node just starts.  A failure with an empty store raises ``StateSyncFailed``; with a state the node keeps it,
    drops the request and starts (it asks again if the peers still cannot serve it blocks)."""
    from genesis.document import encode_genesis, genesis_hash, load_genesis, validator_set_of
    from node.config import GENESIS_FILE, KEY_FILE
    from node.home import load_key_file

    finish_swap(home)
    needed, height = needs_state_sync(home, config.state_sync)
    if not needed:
        return None
    raw = (Path(home) / GENESIS_FILE).read_bytes()
    genesis = load_genesis(Path(home) / GENESIS_FILE)
    genesis_set = validator_set_of(genesis)
    own_next_set = None
    if height > 0:  # the proof of any snapshot must pass through the set this node holds for height + 1
        with Store.open(str(Path(home) / DATA_DIR)) as store:
            own_next_set = own_next_set_hash(store, genesis_set)
    sync = StateSync(Path(home), config, chain_id=genesis.chain_id, genesis_hash=genesis_hash(genesis),
                     genesis_doc=encode_genesis(genesis), genesis_set=genesis_set,
                     private_key=load_key_file(Path(home) / KEY_FILE).private_key, above=height,
                     own_next_set=own_next_set)
    sync.genesis_file_digest = sha256(raw)
    log.info("state sync: fetching a snapshot above height %d from the peers", height)
    try:
        transfer = await sync.run()
    except (StateSyncFailed, SnapshotError) as exc:
        if height == 0:
            raise StateSyncFailed(str(exc)) from exc
        _keep_old_state(home, height, exc)
        return None
    except Exception as exc:  # noqa: BLE001  (a full disk, a store error: the node still has its old state)
        if height == 0:
            raise
        log.exception("state sync failed")
        _keep_old_state(home, height, exc)
        return None
    log.info("state sync done height=%d chunks_fetched=%d chunks_skipped=%d bytes=%d seconds=%.1f peers_dropped=%s",
             transfer.height, transfer.chunks_fetched, transfer.chunks_skipped, transfer.bytes_fetched,
             transfer.seconds, ",".join(transfer.peers_dropped) or "-")
    return transfer
