"""Node configuration: a TOML file in the node's home, every value overridable
on the command line (``--set section.key=value`` or the named flags)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, SupportsIndex, SupportsInt

import tomli_w

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
KEY_FILE = "validator_key.json"
DATA_DIR = "data"
SIGNER_FILE = "signer_state.log"
WAL_FILE = "consensus.wal"
PEER_TOKEN_FILE = "peer_id"


class ConfigError(ValueError):
    code = "bad-config"


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node reads at start; written to ``config.toml`` by ``ledger-node init``."""

    name: str = "node"
    """Human name shown in status and logs."""
    host: str = "127.0.0.1"
    """Address the REST API and the p2p port bind to; loopback unless told otherwise."""
    port: int = 26657
    """TCP port of the client REST API."""
    p2p_port: int = 26656
    """TCP port of the peer transport (authenticated, encrypted; see ``node.p2p``)."""
    peers: tuple[str, ...] = ()
    """Persistent peers, ``NODEID@host:port`` (their p2p ports); this node dials them and keeps the links up."""
    allowed_peers: tuple[str, ...] = ()
    """Node ids, besides the validators and ``peers``, allowed to connect; ``*`` allows any node that proves
    its key (a public full node)."""
    log_level: str = "INFO"
    """Python logging level name."""
    log_file: str = ""
    """Optional log file (in addition to stderr)."""
    mempool_max_txs: int = 50_000
    """Mempool bound by count: full means 503."""
    mempool_max_bytes: int = 64 * 1024 * 1024
    """Mempool bound by encoded bytes."""
    mempool_expiry_blocks: int = 0
    """Blocks a transaction may wait before it expires; 0 means genesis' value."""
    gossip_batch_txs: int = 500
    """Most transactions in one gossip message."""
    gossip_flush_ms: int = 5
    """How long a partial gossip batch waits for company (never while another channel has something to send)."""
    gossip_queue_max: int = 200_000
    """Per-peer queue bound; the oldest transactions are dropped from a full queue (the peer syncs them from blocks)."""
    peer_timeout_ms: int = 5_000
    """A block request unanswered this long goes to another peer."""
    p2p_max_inbound: int = 64
    """Inbound peers connected at once besides the validators and ``peers`` (who always get in); more are closed
    once authenticated.  Handshakes under way are bounded apart (32, 8 per address, 3 s each)."""
    p2p_ping_ms: int = 2_000
    """Keepalive: each connection pings this often."""
    p2p_idle_timeout_ms: int = 10_000
    """A peer that sent nothing this long is disconnected (and dialed again when it is a persistent peer)."""
    p2p_send_timeout_ms: int = 10_000
    """A peer that reads nothing this long while this node has something for it is disconnected."""
    sync_interval_ms: int = 1_000
    """How often peers' heights are polled for block sync."""
    commit_wait_ms: int = 30_000
    """Bound on ``POST /v1/txs?wait=commit`` before answering 504."""
    min_height_wait_ms: int = 10_000
    """Bound on ``?min_height=`` reads before answering 503."""
    max_waiting_reads: int = 1_000
    """``?min_height=`` reads waiting at once; more answer 503 ``too-many-waiting`` (a height further ahead than
    the chain can commit within ``min_height_wait_ms`` answers 503 ``height-not-reached`` at once)."""
    max_event_clients: int = 300
    """``GET /v1/events`` streams served at once; more answer 503 ``too-many-event-clients``."""
    event_queue_blocks: int = 64
    """Committed blocks queued per event client; a client this far behind is cut off (``event: overflow``)."""
    event_keepalive_ms: int = 15_000
    """An idle event stream gets a ``: ping`` comment this often, so proxies keep it open."""
    max_request_bytes: int = 16 * 1024 * 1024
    """Largest request body accepted on any route."""
    create_empty_blocks_ms: int = 1_000
    """With an empty mempool, a node waits up to this long for a transaction before it starts the next height
    (and, as its proposer, proposes an empty block); 0 means it never does: an idle chain makes no blocks, and a
    height starts once a transaction arrives or a peer has started it."""
    clock_skew_warn_ms: int = 10_000
    """This node warns (log and ``GET /v1/status`` ``clock.skewed``) when its clock is further than this from
    the median of the other validators' precommit times."""
    p2p_delay_ms: int = 0
    """Testing aid: hold every outgoing peer packet back this long (wide-area latency on one machine).
    Leave 0 in production."""
    p2p_jitter_ms: int = 0
    """Testing aid: up to this much more or less delay per packet (with ``p2p_delay_ms``)."""
    clock_offset_ms: int = 0
    """Testing aid: shift this node's clock by this many milliseconds (may be negative) wherever consensus
    reads the time (the times its votes carry).  Leave 0 in production."""
    snapshot_interval: int = 10_000
    """Every this many heights the node snapshots its state (UTXO set, validator state) in the background, for
    nodes that join by state sync; 0 takes none.  A snapshot reads and compresses the whole UTXO set (about 20 s
    of a core for 2.5 million outputs), so every 1,000 heights (under three minutes at 1,000 tx/s) it cost more
    than the transactions did."""
    retain_blocks: int = 0
    """Keep only the last this many blocks: older blocks, certificates and per-block indexes are deleted in the
    background (reads below answer 410 pruned; snapshots stay); 0 keeps every block."""
    state_sync: bool = False
    """A node whose store holds no state yet copies a snapshot from its peers at start, checked from the genesis,
    instead of replaying every block (``ledger-node init --state-sync`` sets it)."""
    state_sync_when_behind: bool = True
    """A running node that finds every peer ahead has pruned the blocks it lacks stops, copies a snapshot from
    them (keeping its old state until the new one is whole) and starts again; off, it only logs that it is stuck."""
    snapshot_percent: int = 25
    """The percentage of the wall clock a snapshot's background thread may work (1-100): it reads LevelDB item
    by item, taking the interpreter lock back from the event loop at each, so it works in 5-ms bursts with
    pauses between them, and the heights meanwhile stay short.  100 works without pauses."""
    snapshot_keep: int = 2
    """How many snapshots the node keeps (``HOME/snapshots``)."""
    gc_gen0_threshold: int = 10_000
    """Allocations between two young garbage collections (Python's default is 700); 0 keeps Python's settings.
    The node also freezes everything it allocated at start-up out of the collector's way."""
    gc_freeze_survivors: bool = True
    """After each garbage collection, freeze what survived it, so the collector walks each object once instead
    of again in every older-generation collection; after each commit, freeze what the collector tracks (with a
    young collection first when ``gc_refreeze_s`` is 0) (``node.gc_policy``)."""
    malloc_mmap_threshold: int = 1_048_576
    """Bytes from which the C allocator gives a block its own mapping, handed back when the block is freed
    (glibc only); the node fixes it, where glibc would raise it to the size of each such block freed and keep
    the next ones resident after they are freed; 0 leaves glibc's moving threshold (``node.heap_policy``)."""
    gc_refreeze_s: int = 600
    """With ``gc_freeze_survivors``: after this many seconds, hand the frozen objects back for one full
    collection (frees reference cycles that were garbage when frozen or became garbage since) and freeze the
    survivors again; the interval doubles while rounds free nothing, up to 8 times this (``node.gc_policy``);
    0: never."""

    def with_overrides(self, overrides: dict[str, object]) -> NodeConfig:
        known = {f.name: f for f in fields(self)}
        values: dict[str, Any] = {}  # each coerced to its field's type by coerce_value
        for key, raw in overrides.items():
            if key not in known:
                raise ConfigError(f"unknown config key {key!r}; known: {', '.join(sorted(known))}")
            values[key] = coerce_value(key, raw, type(getattr(self, key)))
        return replace(self, **values)


def coerce_value(key: str, raw: object, kind: type) -> object:
    try:
        if kind is tuple:
            if isinstance(raw, str):
                return tuple(p.strip() for p in raw.split(",") if p.strip())
            if not isinstance(raw, Iterable):
                raise TypeError
            return tuple(str(p) for p in raw)
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
                return raw.lower() in ("true", "1", "yes")
            raise ValueError
        if kind is int:
            if isinstance(raw, bool) or not isinstance(raw, (str, bytes, bytearray, SupportsInt, SupportsIndex)):
                raise ValueError
            return int(raw)
        if kind is str:
            if not isinstance(raw, (str, int)):
                raise ValueError
            return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {raw!r}") from exc
    raise ConfigError(f"config key {key!r} has unsupported type")


def load_config(home: Path, overrides: dict[str, object] | None = None) -> NodeConfig:
    path = Path(home) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"no {CONFIG_FILE} in {home}: run `ledger-node init --home {home} --genesis FILE` first")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    flat: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(value, dict):  # sections are only for readability: [mempool] max_txs -> mempool_max_txs
            for sub, subval in value.items():
                flat[f"{key}_{sub}"] = subval
        else:
            flat[key] = value
    config = NodeConfig().with_overrides(flat).with_overrides(overrides or {})
    check_config(config)
    return config


def check_config(config: NodeConfig) -> None:
    """Settings that each parse but do not go together (``ConfigError`` says which and what to set)."""
    if not 1 <= config.snapshot_percent <= 100:
        raise ConfigError(f"snapshot_percent ({config.snapshot_percent}) must be from 1 to 100")
    if config.malloc_mmap_threshold != 0 and not 4096 <= config.malloc_mmap_threshold <= 32 << 20:
        raise ConfigError(f"malloc_mmap_threshold ({config.malloc_mmap_threshold}) must be 0 (glibc's moving "
                          f"threshold) or from 4096 to 33554432 bytes (32 MiB, glibc's largest)")
    if 0 < config.retain_blocks < config.snapshot_interval:
        raise ConfigError(f"retain_blocks ({config.retain_blocks}) is below snapshot_interval "
                          f"({config.snapshot_interval}): a node restored from this node's latest snapshot would "
                          f"find the blocks after it pruned; set retain_blocks to 0 or to at least snapshot_interval")


def save_config(home: Path, config: NodeConfig) -> None:
    data = asdict(config)
    data["peers"] = list(config.peers)
    data["allowed_peers"] = list(config.allowed_peers)
    (Path(home) / CONFIG_FILE).write_text(tomli_w.dumps(data))


def parse_set_options(items: list[str] | None) -> dict[str, object]:
    """``--set key=value`` pairs from the command line."""
    out: dict[str, object] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace(".", "_").replace("-", "_")] = value
    return out
