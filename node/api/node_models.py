"""Response models of the node routes (``/v1/health``, ``/v1/status``, ``/v1/genesis``, ``/v1/evidence``,
``/v1/mempool``, ``/metrics``): the node's own state, its peers and clock, what ``/openapi.json`` documents.

The conventions of ``node.api.models`` hold here: fields in the order the node writes them, extra keys kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from node.api.models import Open


class Health(Open):
    """The node serves and its consensus has not failed."""

    ok: bool = Field(description="always true (a failed node answers 503)")
    height: int = Field(description="the node's committed height")


class ConsensusState(Open):
    """Where this node's consensus is."""

    height: int = Field(description="the height being decided")
    round: int = Field(description="the round")
    step: str = Field(description="the step: propose, prevote, precommit, ...")


class MempoolSummary(Open):
    """Pending transactions in total."""

    size: int = Field(description="number of pending transactions")
    bytes: int = Field(description="their total encoded size")


class P2pState(Open):
    """The peer-to-peer listener and link count."""

    listen: str = Field(description="host:port the p2p listener is bound to")
    peers_up: int = Field(description="number of connected peers")
    alone: str | None = Field(description="why the node cannot progress alone (no peer, no quorum), or null")


class PeerView(Open):
    """One configured or connected peer."""

    id: str = Field(description="the peer's node id")
    name: str = Field(description="the peer's own name once it said it, else its address or id")
    address: str | None = Field(description="host:port dialled, or null for an inbound-only peer")
    up: bool = Field(description="whether the link is up")
    height: int = Field(description="the peer's last announced height")
    earliest: int = Field(description="the earliest height whose block the peer serves (it pruned those below)")
    connects: int = Field(description="times the link was established")
    outbound: bool | None = Field(description="whether this node dialled the link (null when down)")
    rtt_ms: float | None = Field(description="last ping round-trip time, ms")
    last_error: str = Field(description="why the link last failed (empty if never)")
    queued: dict[str, int] = Field(description="messages waiting to be sent, per channel")
    dropped: dict[str, int] = Field(description="messages dropped for a full queue, per channel")


class ClockState(Open):
    """This node's clock against the other validators'."""

    offset_ms: int | None = Field(description="this clock minus the median of the other validators' precommit "
                                              "times (null: none seen yet)")
    skewed: bool = Field(description="whether the offset is over warn_ms")
    warn_ms: int = Field(description="clock_skew_warn_ms")
    validators_seen: int = Field(description="other validators whose precommits were seen")
    injected_offset_ms: int = Field(description="clock_offset_ms (a testing aid; 0 normally)")


class RefreezeState(Open):
    """Refreeze rounds of the garbage collector (node.gc_policy)."""

    rounds: int = Field(description="rounds done")
    freed: int = Field(description="unreachable objects all rounds found: cycles that became garbage while frozen")
    last_freed: int = Field(description="unreachable objects the last round found")
    last_ms: float = Field(description="how long the last round stopped the node, ms")
    frozen: int = Field(description="objects frozen right after the last round (0 before the first)")
    next_s: int = Field(description="interval before the next round, s (doubles while rounds free nothing)")


class GcState(Open):
    """Garbage-collector pauses of the node process."""

    collections: list[int] = Field(description="collections per generation")
    seconds: list[float] = Field(description="seconds spent per generation")
    longest_ms: float = Field(description="the longest pause, ms")
    collected: list[int] = Field(description="unreachable objects found per generation (reference cycles)")
    refreeze: RefreezeState = Field(description="rounds that hand the frozen survivors back for one full "
                                                "collection (gc_freeze_survivors, gc_refreeze_s)")


class LoopState(Open):
    """Stalls of the node's event loop (node.loop_watch)."""

    stalls: int = Field(description="times the loop was kept from running for at least 250 ms")
    longest_ms: float = Field(description="the longest stall, ms")


class NodeStatus(Open):
    """The node: chain, tip, consensus step, mempool, peers and clock."""

    chain_id: str = Field(description="the chain")
    node_name: str = Field(description="the node's configured name")
    validator_address: str = Field(description="the address of the node's key")
    is_validator: bool = Field(description="whether that key is in the validator set")
    height: int = Field(description="committed height")
    earliest_height: int = Field(description="the lowest height whose block this node holds: 1, or the height of "
                                             "the snapshot it started from (below it: 410 pruned)")
    latest_block_hash: str | None = Field(description="hash (hex) of the block at height (null at genesis)")
    latest_block_time_ms: int | None = Field(description="its time, Unix ms (null at genesis)")
    app_hash: str = Field(description="hash (hex) of the ledger state at height")
    genesis_hash: str = Field(description="hash (hex) of the genesis document")
    catching_up: bool = Field(description="whether the node is syncing blocks from peers (submissions refused)")
    consensus: ConsensusState = Field(description="consensus position")
    mempool: MempoolSummary = Field(description="mempool totals")
    node_id: str = Field(description="the node's p2p id")
    p2p: P2pState = Field(description="p2p listener")
    peers: list[PeerView] = Field(description="the peer links")
    clock: ClockState = Field(description="clock skew")
    cpu_stages_s: dict[str, float] = Field(description="CPU seconds spent per processing stage")
    gc: GcState = Field(description="garbage-collector pauses")
    loop: LoopState = Field(description="event-loop stalls")


class Genesis(Open):
    """The genesis document this node started from."""

    genesis_hash: str = Field(description="hash (hex) of the genesis document; identifies the chain")
    genesis: dict[str, Any] = Field(description="the genesis document as JSON")


class VoteView(Open):
    """One of two conflicting votes."""

    block_hash: str | None = Field(description="the block voted for (hex), null for nil")
    signature: str = Field(description="the vote's signature (hex)")
    encoded: str = Field(description="the vote's canonical encoding (hex)")


class EvidenceRecord(Open):
    """An equivocation: two conflicting votes of one validator for the same height, round and type."""

    kind: str = Field(description="duplicate-vote")
    validator: str = Field(description="the validator's address bytes (hex)")
    height: int = Field(description="height of the votes")
    round: int = Field(description="round of the votes")
    vote_type: str = Field(description="prevote or precommit")
    vote_a: VoteView = Field(description="the first vote")
    vote_b: VoteView = Field(description="the second vote")
    seen_at_ms: int = Field(description="when this node saw it (Unix ms)")


class Evidence(Open):
    """The equivocations this node has seen."""

    evidence: list[EvidenceRecord] = Field(description="the records, oldest first")


class MempoolTx(Open):
    """One pending transaction."""

    txid: str = Field(description="transaction id (hex)")
    fee: int = Field(description="its fee in base units")
    size: int = Field(description="its encoded size, bytes")


class Mempool(Open):
    """Pending transactions."""

    size: int = Field(description="number of pending transactions")
    bytes: int = Field(description="their total encoded size")
    txs: list[MempoolTx] = Field(description="up to limit of them")


class MetricsText(RootModel[str]):
    """Prometheus text exposition format (version 0.0.4)."""
