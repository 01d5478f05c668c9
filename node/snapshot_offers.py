"""The snapshots a node's peers offer: listing them, checking a snapshot's anchor (its certified block and the
proof of the validator sets from genesis, ``node.snapshot_file``), and, for a running node its peers say they
pruned past, probing for a snapshot above its height that checks out (``probe_snapshot_above``).  Used by state
sync (``node.state_sync``) and by the switch to it (``node.state_sync_switch``)."""

from __future__ import annotations

import asyncio
import logging

from node.encoding import DecodeError, Reader
from node.ledger.errors import SnapshotError
from node.ledger.snapshot import MAX_MANIFEST_BYTES, Manifest
from node.light_client import trusted_set_at
from node.p2p import snapshot_wire
from node.p2p.peer_link import PeerLink
from node.snapshot_file import check_anchor, read_anchor
from node.types.validators import ValidatorSet

log = logging.getLogger("ledger.statesync")

_WARNED: set[tuple[str, str]] = set()
"""(peer, reason) pairs already logged: an older peer's manifests of another format are listed at every look."""
MAX_WARNED = 1024


async def list_offers(reactor, chain_id: str) -> dict[bytes, tuple[Manifest, list[PeerLink]]]:
    """The snapshots the up peers offer, by manifest hash, with the peers offering each."""
    offers: dict[bytes, tuple[Manifest, list[PeerLink]]] = {}
    links = [link for link in reactor.links if link.up]
    answers = await asyncio.gather(*(reactor.request_snapshot(link, snapshot_wire.LIST_REQUEST) for link in links))
    for link, body in zip(links, answers, strict=True):
        if not body:
            continue
        try:
            raws = snapshot_wire.decode_list(body, MAX_MANIFEST_BYTES)
        except DecodeError as exc:
            warn_once(link.name, f"its snapshot list does not decode: {exc}")
            continue
        for raw in raws:  # each on its own: a peer of an earlier release may list some of another format
            try:
                manifest = Manifest.decode(raw)
            except SnapshotError as exc:
                warn_once(link.name, f"it lists a snapshot that does not decode: {exc}")
                continue
            if manifest.chain_id == chain_id:
                offers.setdefault(manifest.hash, (manifest, []))[1].append(link)
    return offers


def warn_once(peer: str, reason: str) -> None:
    """Log ``reason`` about ``peer`` the first time it is seen (state sync looks at the offers every few seconds)."""
    if (peer, reason) in _WARNED:
        return
    if len(_WARNED) >= MAX_WARNED:
        _WARNED.clear()
    _WARNED.add((peer, reason))
    log.warning("state sync: leaving out what %s offers: %s", peer, reason)


def blocks_follow(reactor, height: int) -> bool:
    """Whether a node restored at ``height`` can go on: some up peer serves block ``height + 1`` (it has not pruned
    it), or every up peer is at ``height`` still."""
    links = [link for link in reactor.links if link.up]
    return any(link.earliest <= height + 1 <= link.height for link in links) or \
        bool(links) and all(link.height <= height for link in links)


def check_anchor_from(chain_id: str, genesis_set: ValidatorSet, manifest: Manifest, block, commit, changes,
                      own: tuple[int, bytes] | None) -> tuple[ValidatorSet, object]:
    """``check_anchor``, and for a node that has a state at height h (``own`` = (h, the hash of its set for
    h + 1)): the proof's walk must reach that very set at h + 1, so a chain forged with keys that left the set
    before h cannot take the node anywhere."""
    validators, state = check_anchor(chain_id, genesis_set, manifest, block, commit, changes)
    if own is not None:
        height, own_hash = own
        before = [step for step in changes if step.header.height + 1 <= height + 1]
        if trusted_set_at(chain_id, genesis_set, before, height + 1).hash != own_hash:
            raise SnapshotError("snapshot-header", f"the snapshot's proof names another validator set for height "
                                                   f"{height + 1} than this node holds")
    return validators, state


async def fetch_anchor(reactor, manifest: Manifest, links: list[PeerLink], chain_id: str, genesis_set: ValidatorSet,
                       own: tuple[int, bytes] | None):
    """(block, commit, validators, validator state) of ``manifest``'s height from the first peer whose anchor
    checks out (``check_anchor_from``), or None."""
    for link in links:
        body = await reactor.request_snapshot(link, snapshot_wire.ANCHOR_REQUEST, manifest.height.to_bytes(8, "big"))
        try:
            block, commit, changes = read_anchor(Reader(body or b""))
            validators, state = check_anchor_from(chain_id, genesis_set, manifest, block, commit, changes, own)
            return block, commit, validators, state
        except Exception as exc:  # noqa: BLE001  (any odd anchor is that peer's problem, never the whole look's)
            log.warning("state sync: %s served an anchor for height %d that does not check out: %s", link.name,
                        manifest.height, exc)
    return None


def own_next_set_hash(store, genesis_set: ValidatorSet) -> bytes:
    """The hash of the validator set ``store`` holds for its next height: the one its tip header names (the
    genesis set at height 0); a snapshot's proof must pass through it (``check_anchor_from``)."""
    header = store.get_header(store.height) if store.height > 0 else None
    return header.next_validators_hash if header is not None else genesis_set.hash


async def probe_snapshot_above(reactor, chain_id: str, genesis_set: ValidatorSet, height: int,
                               own_next_set: bytes) -> int | None:
    """For a running node at ``height`` that its peers say they pruned past: the height of a snapshot above it
    that checks out from the genesis through this node's own set, with a peer serving the blocks after it; None
    when there is none (the peers' word alone never makes the node drop its state)."""
    offers = await list_offers(reactor, chain_id)
    for manifest, links in sorted(offers.values(), key=lambda item: -item[0].height):
        if manifest.height <= height or not blocks_follow(reactor, manifest.height):
            continue
        if await fetch_anchor(reactor, manifest, links, chain_id, genesis_set, (height, own_next_set)) is not None:
            return manifest.height
    return None
