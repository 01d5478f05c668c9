"""``ledger-devnet bench``: committed throughput and latency of a real devnet.

What it does, in order:

1. Measures this machine's ceiling: single-core signature verifications per
   second with the node's own verifier (``node.crypto.verify_signature``);
   ``ceiling_tps = verify_per_s * cores / validators``, because every
   validator checks every signature once and all of them share these cores.
2. Starts a fresh devnet (or attaches to a running one with ``--attach``).
   The genesis it builds funds ``--slots`` outputs (one genesis allocation
   each, owned round-robin by ``--accounts`` keys) and, with ``--utxos U``,
   U more outputs nobody spends, so the UTXO set starts at that size.
3. Pre-signs every transfer before the clock starts: one input, two outputs
   (a payment and the change), like a real payment.  Each slot is a chain:
   transfer j+1 of a slot spends the change of transfer j, and is only sent
   once transfer j is seen committed, so no transaction ever depends on an
   unconfirmed one and every slot always sends to the same node.
4. Offers the load open-loop at ``--rate`` to every node round-robin through
   ``POST /v1/txs/batch``, for ``--duration`` seconds after a warm-up.  With
   ``--max`` it first ramps the rate up in short steps (a step that fails is
   tried once more) to the highest one with latency to spare, then measures
   at that rate, and if it does not hold for the whole duration (p50 within
   ``--target-p50``, p99 within 3x, commits keeping up) measures again 10%
   lower, up to ``--attempts`` times.
5. Learns commits from the blocks (a long poll on ``GET /v1/blocks`` with
   ``min_height``, never one request per transaction), so each transaction's
   latency is submission to the moment its block is visible.
6. Samples every node process (CPU seconds, RSS, peak RSS from /proc) and
   its LevelDB size, then checks that all nodes hold the same app hash and
   that every submitted transaction was committed exactly once or rejected
   with a reason.  A run that loses a transaction exits non-zero.

``python -m devnet.bench --help`` runs it without the ``ledger-devnet`` CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devnet.network import (
    NETWORK_FILE,
    LOG_FILE,
    NodeSpec,
    devnet_params,
    free_ports,
    load_network,
    node_status,
    pid_alive,
    read_pid,
    start_node,
    stop_node,
)
from genesis.build import make_genesis
from genesis.document import Genesis, genesis_to_json
from node.config import CONFIG_FILE, DATA_DIR, GENESIS_FILE, KEY_FILE, NodeConfig, save_config
from node.crypto import HAVE_FAST_BACKEND, address_hash, derive_public_key, encode_address, sign_digest, \
    verify_signature
from node.home import init_home, write_key_file
from node.ledger.state import genesis_outpoint
from node.ledger.transactions import ZERO_SIGNATURE, OutPoint, Transaction, TxInput, TxOutput, signing_digest

CHAIN_ID = "bench"
PAYMENT = 10_000
"""Base units each transfer pays to its recipient."""
FEE = 1_000
"""Base units each transfer leaves as fee."""
EXTRA_UTXO_AMOUNT = 1
EXTRA_UTXO_OWNERS = 1_000
"""The ``--utxos`` outputs belong to this many addresses nobody holds a key for."""
TICK_S = 0.1
"""A batch leaves at least this often at low rates (so 50 tx/s is 5 every 0.1 s, not 100 every 2 s)."""
BACKOFF = 0.9
"""With --max, a measured rate that does not hold is measured again this much lower."""
TRANSIENT_CODES = frozenset({"mempool-full", "catching-up"})
"""Rejections that say "not now": the same transaction is offered again later."""


class BenchError(RuntimeError):
    """The bench could not run (not: the network did badly; that is a result)."""


# --------------------------------------------------------------------------- options


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options (shared by ``ledger-devnet bench`` and ``python -m devnet.bench``)."""
    g = parser.add_argument_group("network")
    g.add_argument("--validators", type=int, default=4, help="validators of the fresh devnet (default 4)")
    g.add_argument("--home", type=Path, default=None,
                   help="where the fresh devnet lives (default: a temporary directory, removed afterwards)")
    g.add_argument("--keep", action="store_true", help="keep the devnet's directory (with --home it is always kept)")
    g.add_argument("--attach", type=Path, default=None, metavar="DIR",
                   help="use the running devnet in DIR instead of starting one (funds its slots from --faucet)")
    g.add_argument("--faucet", type=Path, default=None, metavar="FILE",
                   help="with --attach: an unencrypted wallet file holding the faucet key "
                        "(default: DIR/wallets/faucet.json or any faucet*.json under DIR)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="node config override for the fresh devnet, e.g. --set gossip_flush_ms=10")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="consensus parameter of the fresh devnet's genesis, e.g. --param max_block_txs=2000 "
                        "(default: the devnet's timeouts and the genesis defaults)")
    l = parser.add_argument_group("load")
    rate = l.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=float, default=None, help="offered transactions per second (default 200)")
    rate.add_argument("--max", action="store_true",
                      help="ramp the rate up to the highest one the network sustains, then measure at it")
    l.add_argument("--duration", type=float, default=20.0, help="measured seconds (after the warm-up)")
    l.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default 3)")
    l.add_argument("--accounts", type=int, default=100, help="keys that own the funded outputs (default 100)")
    l.add_argument("--slots", type=int, default=None,
                   help="funded outputs used as independent payment chains (default: 8 s worth of the top rate)")
    l.add_argument("--utxos", type=int, default=0, help="extra unspent outputs preloaded in genesis (scale test)")
    l.add_argument("--batch", type=int, default=100, help="most transactions per POST /v1/txs/batch (default 100)")
    l.add_argument("--inflight", type=int, default=4, help="concurrent requests per node (default 4)")
    m = parser.add_argument_group("--max search")
    m.add_argument("--start-rate", type=float, default=300.0, help="first rate of the ramp (default 300)")
    m.add_argument("--rate-cap", type=float, default=3000.0, help="highest rate the ramp tries (default 3000)")
    m.add_argument("--step", type=float, default=8.0, help="seconds per ramp step (default 8)")
    m.add_argument("--attempts", type=int, default=3,
                   help="if the found rate does not hold for --duration, measure again 10%% lower, "
                        "at most this many times in all (default 3)")
    m.add_argument("--factor", type=float, default=1.25, help="rate multiplier per ramp step (default 1.25)")
    m.add_argument("--target-p50", type=float, default=1.0, help="a rate is sustained if p50 latency stays under "
                                                                 "this (seconds, default 1.0)")
    o = parser.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    o.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="plot throughput and latency")
    o.add_argument("--quiet", action="store_true", help="no live display; just the final table")
    o.add_argument("--verify-seconds", type=float, default=1.0, help="time spent measuring the verify ceiling")


@dataclass
class Options:
    validators: int = 4
    home: Path | None = None
    keep: bool = False
    attach: Path | None = None
    faucet: Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    rate: float = 200.0
    max: bool = False
    duration: float = 20.0
    warmup: float = 3.0
    accounts: int = 100
    slots: int | None = None
    utxos: int = 0
    batch: int = 100
    inflight: int = 4
    start_rate: float = 300.0
    rate_cap: float = 3000.0
    step: float = 8.0
    attempts: int = 3
    factor: float = 1.25
    target_p50: float = 1.0
    json: Path | None = None
    plot: Path | None = None
    quiet: bool = False
    verify_seconds: float = 1.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Options":
        overrides: dict[str, object] = {}
        for item in getattr(args, "set", None) or []:
            if "=" not in item:
                raise BenchError(f"--set expects KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            overrides[key.strip().replace(".", "_").replace("-", "_")] = value
        params: dict[str, int] = {}
        for item in getattr(args, "param", None) or []:
            key, sep, value = item.partition("=")
            if not sep or not value.strip().lstrip("-").isdigit():
                raise BenchError(f"--param expects KEY=INTEGER, got {item!r}")
            params[key.strip().replace("-", "_")] = int(value)
        opts = cls(
            params=params,
            validators=args.validators, home=args.home, keep=args.keep, attach=args.attach, faucet=args.faucet,
            overrides=overrides, rate=args.rate if args.rate is not None else 200.0, max=args.max,
            duration=args.duration, warmup=args.warmup if args.warmup is not None else 3.0,
            accounts=args.accounts, slots=args.slots, utxos=args.utxos, batch=args.batch, inflight=args.inflight,
            start_rate=args.start_rate, rate_cap=args.rate_cap, step=args.step, factor=args.factor,
            attempts=max(1, args.attempts),
            target_p50=args.target_p50, json=args.json, plot=args.plot, quiet=args.quiet,
            verify_seconds=args.verify_seconds)
        opts.check()
        return opts

    def check(self) -> None:
        if self.validators < 1:
            raise BenchError("--validators must be at least 1")
        if self.duration <= 0 or self.warmup < 0:
            raise BenchError("--duration must be positive and --warmup not negative")
        if self.rate <= 0 or self.start_rate <= 0 or self.rate_cap < self.start_rate or self.factor <= 1:
            raise BenchError("rates must be positive, --rate-cap >= --start-rate and --factor > 1")
        if self.accounts < 2:
            raise BenchError("--accounts must be at least 2 (transfers pay another account)")
        if self.utxos < 0 or self.batch < 1 or self.inflight < 1:
            raise BenchError("--utxos must not be negative; --batch and --inflight must be at least 1")

    @property
    def top_rate(self) -> float:
        return self.rate_cap if self.max else self.rate

    def ramp_rates(self) -> list[float]:
        rates, r = [], self.start_rate
        while r < self.rate_cap:
            rates.append(round(r))
            r *= self.factor
        rates.append(round(self.rate_cap))
        return rates


# --------------------------------------------------------------------------- the machine's ceiling


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Signature verifications per second on one core, with the node's verifier."""
    from node.crypto import generate_private_key

    samples = []
    for i in range(32):
        key = generate_private_key()
        digest = os.urandom(32)
        samples.append((derive_public_key(key), digest, sign_digest(key, digest)))
    done = 0
    start = time.perf_counter()
    deadline = start + max(seconds, 0.05)
    while True:
        for pub, digest, sig in samples:
            if not verify_signature(pub, digest, sig):
                raise BenchError("the node's verifier refused a valid signature")
        done += len(samples)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- workload


class Signer:
    """One account: its key, public key and address; signs digests fast."""

    def __init__(self, private_key: bytes):
        self.private_key = private_key
        self.public_key = derive_public_key(private_key)
        self.address = address_hash(self.public_key)
        self._cc = None
        if HAVE_FAST_BACKEND:
            from coincurve import PrivateKey

            self._cc = PrivateKey(private_key)

    def sign(self, digest: bytes) -> bytes:
        if self._cc is not None:  # what node.crypto.sign_digest does, without rebuilding the key each time
            return self._cc.sign_recoverable(digest, hasher=None)[:64]
        return sign_digest(self.private_key, digest)


@dataclass(slots=True)
class TxRecord:
    """One pre-signed transfer and what became of it."""

    txid: str
    hex: str
    slot: int
    submit_t: float | None = None
    """When it was (last) sent: monotonic seconds."""
    phase: str = ""
    attempts: int = 0
    status: str = "signed"
    """signed, sent, accepted, rejected, error, committed."""
    code: str = ""
    """Rejection code (or transport error) of the last attempt."""
    commit_t: float | None = None
    height: int = 0
    commits: int = 0


@dataclass(slots=True)
class Slot:
    """A funded output and the chain of pre-signed transfers that spend it, one after the other."""

    index: int
    owner: int
    node: int
    outpoint: OutPoint
    amount: int
    queue: collections.deque = field(default_factory=collections.deque)
    busy: bool = False
    dead: bool = False


class Workload:
    """Accounts, slots and their pre-signed transfers."""

    def __init__(self, chain_id: str, signers: list[Signer], nodes: int):
        self.chain_id = chain_id
        self.signers = signers
        self.nodes = nodes
        self.slots: list[Slot] = []
        self.records: dict[str, TxRecord] = {}
        self.ready: list[collections.deque[int]] = [collections.deque() for _ in range(nodes)]

    def add_slot(self, owner: int, outpoint: OutPoint, amount: int) -> None:
        index = len(self.slots)
        slot = Slot(index, owner, index % self.nodes, outpoint, amount)
        self.slots.append(slot)
        self.ready[slot.node].append(index)

    def presign(self, total: int) -> int:
        """Extend the slots' chains by about ``total`` transfers in all; returns how many were signed."""
        live = [s for s in self.slots if not s.dead]
        if not live or total <= 0:
            return 0
        per_slot = math.ceil(total / len(live) * 1.25) + 1
        signed = 0
        k = len(self.signers)
        for slot in live:
            signer = self.signers[slot.owner]
            payee = self.signers[(slot.owner + 1) % k].address
            for _ in range(per_slot):
                change = slot.amount - PAYMENT - FEE
                if change <= 0:
                    break
                outputs = (TxOutput(payee, PAYMENT), TxOutput(signer.address, change))
                unsigned = Transaction((TxInput(slot.outpoint, signer.public_key, ZERO_SIGNATURE),), outputs)
                signature = signer.sign(signing_digest(unsigned, self.chain_id))
                tx = Transaction((TxInput(slot.outpoint, signer.public_key, signature),), outputs)
                txid = tx.txid
                record = TxRecord(txid.hex(), tx.encoded.hex(), slot.index)
                self.records[record.txid] = record
                slot.queue.append(record)
                slot.outpoint = OutPoint(txid, 1)
                slot.amount = change
                signed += 1
        return signed

    def take(self, node: int, count: int) -> list[TxRecord]:
        """Up to ``count`` transfers from idle slots of ``node``."""
        ready, slots = self.ready[node], self.slots
        out = []
        while ready and len(out) < count:
            slot = slots[ready.popleft()]
            if slot.dead or slot.busy:
                continue
            if not slot.queue:
                slot.dead = True
                continue
            slot.busy = True
            out.append(slot.queue[0])
        return out

    def release(self, record: TxRecord, committed: bool) -> None:
        """The slot's current transfer committed (next one may go) or was refused for now (send it again)."""
        slot = self.slots[record.slot]
        if not slot.busy or not slot.queue or slot.queue[0] is not record:
            return
        if committed:
            slot.queue.popleft()
        slot.busy = False
        self.ready[slot.node].append(slot.index)

    def retire(self, record: TxRecord) -> None:
        """The slot's transfer was refused for good: its chain cannot go on."""
        slot = self.slots[record.slot]
        if slot.queue and slot.queue[0] is record:
            slot.dead = True
            slot.busy = False

    def idle_slots(self) -> int:
        return sum(len(q) for q in self.ready)


def slot_amount(per_slot: int) -> int:
    return (per_slot + 2) * (PAYMENT + FEE) + PAYMENT


# --------------------------------------------------------------------------- genesis and homes


def default_slots(opts: Options) -> int:
    if opts.slots is not None:
        return max(opts.slots, 1)
    return max(200, int(opts.top_rate * 8))


def transfer_budget(opts: Options) -> tuple[int, int]:
    """(transfers to pre-sign before the first clock, transfers the whole run may need)."""
    measured = opts.top_rate * (opts.warmup + opts.duration)
    if not opts.max:
        first = int(measured * 1.05) + opts.batch
        return first, first
    ramp = sum(r * opts.step for r in opts.ramp_rates()) + 3 * opts.rate_cap * opts.step
    return int(ramp * 1.05) + opts.batch, int((ramp + opts.attempts * measured) * 1.1) + opts.batch


def bench_params(overrides: dict[str, int] | None = None):
    """The devnet's consensus parameters, with ``--param`` overrides."""
    import dataclasses

    params = devnet_params()
    try:
        return dataclasses.replace(params, **(overrides or {}))
    except TypeError as exc:
        names = ", ".join(f.name for f in dataclasses.fields(params))
        raise BenchError(f"unknown consensus parameter in --param ({exc}); known: {names}") from None


def write_genesis_json(genesis: Genesis, path: Path) -> None:
    """The genesis file, fast: each address is bech32-encoded once, not once per allocation."""
    head = genesis_to_json(Genesis(genesis.chain_id, genesis.genesis_time_ms, genesis.validators, (),
                                   genesis.params))
    names: dict[bytes, str] = {}
    parts = []
    for a in genesis.allocations:
        text = names.get(a.address)
        if text is None:
            text = names[a.address] = encode_address(a.address)
        parts.append(f'{{"address":"{text}","amount":{a.amount}}}')
    head["allocations"] = "@@ALLOCATIONS@@"
    text = json.dumps(head, indent=1).replace('"@@ALLOCATIONS@@"', "[\n" + ",\n".join(parts) + "\n]")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_homes(base: Path, genesis: Genesis, validator_keys: dict[str, bytes],
                overrides: dict[str, object]) -> list[NodeSpec]:
    """Homes for a fresh network, like ``devnet.network.write_network`` but fast at any genesis size.

    The genesis JSON is written once (each address encoded once), the first
    home is made by ``node.home.init_home`` (so it holds whatever a node
    expects), its store is compacted, and the other homes are copies of it
    with their own key and config: one genesis parse and one height-0 store,
    not one per node.
    """
    base.mkdir(parents=True, exist_ok=True)
    genesis_path = base / GENESIS_FILE
    write_genesis_json(genesis, genesis_path)
    names = list(validator_keys)
    host = "127.0.0.1"
    ports = free_ports(len(names), host)
    specs = [NodeSpec(name, base / name, host, port) for name, port in zip(names, ports)]
    configs = {}
    for spec in specs:
        peers = tuple(other.url for other in specs if other.name != spec.name)
        configs[spec.name] = NodeConfig(name=spec.name, host=host, port=spec.port, peers=peers,
                                        log_file=str(spec.home / LOG_FILE)).with_overrides(overrides)
        if spec.home.exists():
            shutil.rmtree(spec.home)
    first = specs[0]
    init_home(first.home, genesis_path, validator_keys[first.name], configs[first.name], force=True)
    compact_store(first.home / DATA_DIR)
    for spec in specs[1:]:
        shutil.copytree(first.home, spec.home)
        write_key_file(spec.home / KEY_FILE, validator_keys[spec.name])
        save_config(spec.home, configs[spec.name])
    (base / NETWORK_FILE).write_text(json.dumps(
        {"chain_id": genesis.chain_id, "nodes": [{"name": s.name, "home": str(s.home), "host": s.host,
                                                   "port": s.port} for s in specs]}, indent=2))
    assert all((s.home / CONFIG_FILE).exists() for s in specs)
    return specs


def compact_store(path: Path) -> None:
    """Compact a freshly bulk-written LevelDB, so the nodes do not all start by compacting the same data."""
    import plyvel

    db = plyvel.DB(str(path))
    try:
        db.compact_range()
    finally:
        db.close()


def build_fresh(opts: Options, base: Path, log) -> tuple[list[NodeSpec], Workload, dict]:
    """Genesis with the slots and extra UTXOs, node homes, and the workload's first transfers."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    n_slots = default_slots(opts)
    first, whole = transfer_budget(opts)
    per_slot = math.ceil(whole / n_slots * 1.25) + 2
    signers = [Signer(_new_key()) for _ in range(opts.accounts)]
    amount = slot_amount(per_slot)
    allocations: list[tuple[bytes, int]] = [(signers[i % len(signers)].address, amount) for i in range(n_slots)]
    sinks = [os.urandom(20) for _ in range(min(EXTRA_UTXO_OWNERS, max(opts.utxos, 1)))]
    allocations.extend((sinks[i % len(sinks)], EXTRA_UTXO_AMOUNT) for i in range(opts.utxos))
    try:
        genesis, validator_keys = make_genesis(CHAIN_ID, opts.validators, allocations, bench_params(opts.params))
    except ValueError as exc:  # GenesisError: a parameter out of its range
        raise BenchError(f"bad genesis: {exc}") from None
    timings["genesis_s"] = time.perf_counter() - t
    log(f"genesis: {opts.validators} validators, {n_slots} slots for {opts.accounts} accounts, "
        f"{opts.utxos} extra UTXOs")
    t = time.perf_counter()
    specs = write_homes(base, genesis, validator_keys, {"log_level": "INFO", **opts.overrides})
    timings["init_s"] = time.perf_counter() - t
    workload = Workload(genesis.chain_id, signers, len(specs))
    for i in range(n_slots):
        workload.add_slot(i % len(signers), genesis_outpoint(genesis.chain_id, i), amount)
    return specs, workload, timings


def _new_key() -> bytes:
    from node.crypto import generate_private_key

    return generate_private_key()


# --------------------------------------------------------------------------- attaching to a running devnet


def find_faucet_key(base: Path, explicit: Path | None) -> bytes:
    candidates = [explicit] if explicit else [base / "wallets" / "faucet.json", base / "faucet.json",
                                              *sorted(base.rglob("faucet*.json"))]
    for path in candidates:
        if path is None or not path.exists():
            continue
        try:
            obj = json.loads(path.read_text())
        except ValueError:
            continue
        key = obj.get("private_key") if isinstance(obj, dict) else None
        if isinstance(key, str):
            return bytes.fromhex(key)
    raise BenchError(f"no unencrypted faucet wallet found under {base}; pass --faucet FILE")


def fund_attached(opts: Options, specs: list[NodeSpec], chain_id: str, faucet_key: bytes, log) -> Workload:
    """A funding phase (only with --attach): fan the faucet's coins out to the slots, wait for commit."""
    n_slots = default_slots(opts)
    _first, whole = transfer_budget(opts)
    per_slot = math.ceil(whole / n_slots * 1.25) + 2
    amount = slot_amount(per_slot)
    signers = [Signer(_new_key()) for _ in range(opts.accounts)]
    faucet = Signer(faucet_key)
    client = httpx.Client(timeout=30)
    try:
        r = client.get(specs[0].url + f"/v1/addresses/{encode_address(faucet.address)}/utxos",
                       params={"limit": 1000})
        r.raise_for_status()
        utxos = sorted(r.json()["utxos"], key=lambda u: -u["amount"])
        if not utxos:
            raise BenchError("the faucet has no unspent outputs")
        prev = OutPoint(bytes.fromhex(utxos[0]["txid"]), utxos[0]["index"])
        have = utxos[0]["amount"]
        fan = 500
        txs: list[Transaction] = []
        origins: list[tuple[int, OutPoint]] = []
        made = 0
        while made < n_slots:
            count = min(fan, n_slots - made)
            change = have - count * amount - FEE
            if change <= 0:
                raise BenchError(f"the faucet's largest output ({have}) cannot fund {n_slots} slots of {amount}")
            outputs = [TxOutput(signers[(made + i) % len(signers)].address, amount) for i in range(count)]
            outputs.append(TxOutput(faucet.address, change))
            unsigned = Transaction((TxInput(prev, faucet.public_key, ZERO_SIGNATURE),), tuple(outputs))
            sig = faucet.sign(signing_digest(unsigned, chain_id))
            tx = Transaction((TxInput(prev, faucet.public_key, sig),), tuple(outputs))
            txs.append(tx)
            origins.extend(((made + i) % len(signers), OutPoint(tx.txid, i)) for i in range(count))
            made += count
            prev, have = OutPoint(tx.txid, count), change
        r = client.post(specs[0].url + "/v1/txs/batch", json={"txs": [tx.encoded.hex() for tx in txs]})
        r.raise_for_status()
        bad = [x for x in r.json()["results"] if x["status"] not in ("accepted", "committed")]
        if bad:
            raise BenchError(f"funding transaction refused: {bad[0]}")
        deadline = time.monotonic() + 120
        for tx in txs:
            while True:
                r = client.get(specs[0].url + f"/v1/txs/{tx.txid.hex()}")
                if r.status_code == 200 and r.json().get("status") == "committed":
                    break
                if time.monotonic() > deadline:
                    raise BenchError("funding transactions did not commit within 120 s")
                time.sleep(0.2)
        log(f"funded {n_slots} slots with {len(txs)} fan-out transactions")
    finally:
        client.close()
    workload = Workload(chain_id, signers, len(specs))
    for owner, outpoint in origins:
        workload.add_slot(owner, outpoint, amount)
    return workload


# --------------------------------------------------------------------------- node processes


@dataclass
class NodeSample:
    cpu_s: float
    rss_mb: float
    hwm_mb: float


def proc_sample(pid: int | None) -> NodeSample | None:
    """CPU seconds (user+system), RSS and peak RSS of a process, from /proc."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields_ = handle.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields_[11]) + int(fields_[12])) / ticks
        rss = hwm = 0.0
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
        return NodeSample(cpu, rss, hwm)
    except (OSError, ValueError, IndexError):
        return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# --------------------------------------------------------------------------- the run


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class BlockSeen:
    height: int
    seen_t: float
    txs: int
    time_ms: int


@dataclass
class Phase:
    name: str
    rate: float
    start: float
    end: float
    offered: int = 0
    starved: int = 0


class Bench:
    """The asynchronous part: offer load, follow the blocks, sample the nodes, show progress."""

    def __init__(self, opts: Options, specs: list[NodeSpec], workload: Workload, log, console=None):
        self.opts = opts
        self.specs = specs
        self.workload = workload
        self.log = log
        self.console = console
        self.blocks: list[BlockSeen] = []
        self.phases: list[Phase] = []
        self.samples: dict[str, list[tuple[float, NodeSample]]] = {s.name: [] for s in specs}
        self.pids = {s.name: read_pid(s.home) for s in specs}
        self.rejections: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.sent_requests = 0
        self.next_height = 1
        self.start_height = 0
        self.t0 = 0.0
        self.wall_offset = time.time() - time.monotonic()
        self.in_flight: list[int] = [0] * len(specs)
        self.phase: Phase | None = None
        self.ramp: list[dict] = []
        self.attempts: list[dict] = []
        self.stop_tracking = False
        self.node_failed: str | None = None
        self.tracker_error = ""
        self._pending_posts: set[asyncio.Task] = set()

    # ---------------------------------------------------------------- submission

    async def _post(self, client: httpx.AsyncClient, node: int, records: list[TxRecord], phase: Phase) -> None:
        body = ('{"txs":["' + '","'.join(r.hex for r in records) + '"]}').encode()
        now = time.monotonic()
        for r in records:
            r.submit_t = now
            r.phase = phase.name
            r.attempts += 1
            r.status = "sent"
        self.in_flight[node] += 1
        self.sent_requests += 1
        try:
            response = await client.post(self.specs[node].url + "/v1/txs/batch", content=body,
                                         headers={"content-type": "application/json"})
        except (httpx.HTTPError, OSError) as exc:
            code = f"transport:{type(exc).__name__}"
            self.errors[code] += len(records)
            for r in records:
                if r.status != "committed":
                    r.status, r.code = "error", code
            return
        finally:
            self.in_flight[node] -= 1
        if response.status_code != 200:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = f"http-{response.status_code}"
            self.rejections[code] += len(records)
            for r in records:
                if r.status == "committed":
                    continue
                r.status, r.code = "rejected", code
                if code in TRANSIENT_CODES or response.status_code == 503:
                    self.workload.release(r, committed=False)
                else:
                    self.workload.retire(r)
            return
        results = response.json()["results"]
        for r, result in zip(records, results):
            status = result.get("status")
            if r.status == "committed":
                continue
            if status == "accepted":
                r.status = "accepted"
            elif status == "committed":
                r.status = "accepted"  # the block follower will see it
            else:
                code = result.get("code", "rejected")
                r.status, r.code = "rejected", code
                self.rejections[code] += 1
                if code in TRANSIENT_CODES:
                    self.workload.release(r, committed=False)
                else:
                    self.workload.retire(r)

    async def offer(self, clients: list[httpx.AsyncClient], name: str, rate: float, seconds: float) -> Phase:
        """Send at ``rate`` for ``seconds``: open loop, batches round-robin over the nodes."""
        n = len(self.specs)
        batch = max(1, min(self.opts.batch, math.ceil(rate * TICK_S)))
        interval = batch / rate
        start = time.monotonic()
        phase = Phase(name, rate, start, start + seconds)
        self.phases.append(phase)
        self.phase = phase
        k = 0
        loop = asyncio.get_running_loop()
        while True:
            due = start + k * interval
            if due >= phase.end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.node_failed:
                break
            node = k % n
            k += 1
            records = self.workload.take(node, batch)
            phase.starved += batch - len(records)
            if not records:
                continue
            phase.offered += len(records)
            if self.in_flight[node] >= self.opts.inflight * 4:
                self.errors["client-backlog"] += 1
            task = loop.create_task(self._post(clients[node], node, records, phase))
            self._pending_posts.add(task)
            task.add_done_callback(self._pending_posts.discard)
        phase.end = time.monotonic()
        return phase

    async def settle_posts(self) -> None:
        if self._pending_posts:
            await asyncio.gather(*list(self._pending_posts), return_exceptions=True)

    # ---------------------------------------------------------------- following the chain

    async def track(self, client: httpx.AsyncClient) -> None:
        """Long-poll node 0's blocks; mark each of our transactions committed when its block shows up."""
        url = self.specs[0].url + "/v1/blocks"
        records = self.workload.records
        while not self.stop_tracking:
            h = self.next_height
            try:
                response = await client.get(url, params={"from": h, "to": h + 99, "min_height": h}, timeout=15)
            except (httpx.HTTPError, OSError) as exc:
                self.tracker_error = type(exc).__name__
                await asyncio.sleep(0.2)
                continue
            if response.status_code == 503:  # the long poll ran out (no block for a while): ask again
                await asyncio.sleep(0.01)
                continue
            if response.status_code != 200:
                self.tracker_error = f"HTTP {response.status_code}"
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            for block in response.json()["blocks"]:
                height = block["height"]
                if height != self.next_height:
                    continue
                self.next_height = height + 1
                self.blocks.append(BlockSeen(height, now, block["tx_count"], block["header"]["time_ms"]))
                for txid in block["txids"]:
                    r = records.get(txid)
                    if r is None:
                        continue
                    r.commits += 1
                    if r.commits == 1:
                        r.commit_t = now
                        r.height = height
                        r.status = "committed"
                        self.workload.release(r, committed=True)

    async def sample_nodes(self) -> None:
        while not self.stop_tracking:
            now = time.monotonic()
            for spec in self.specs:
                s = proc_sample(self.pids[spec.name])
                if s is not None:
                    self.samples[spec.name].append((now, s))
                elif self.pids[spec.name] is not None and self.opts.attach is None:
                    self.node_failed = f"{spec.name} (pid {self.pids[spec.name]}) is gone"
            await asyncio.sleep(1.0)

    # ---------------------------------------------------------------- live view

    def recent(self, window: float = 5.0) -> tuple[float, float | None]:
        now = time.monotonic()
        txs = sum(b.txs for b in self.blocks if b.seen_t >= now - window)
        lat = sorted(r.commit_t - r.submit_t for r in self.workload.records.values()
                     if r.commit_t is not None and r.commit_t >= now - window and r.submit_t is not None)
        span = min(window, max(now - self.t0, 1e-3))
        return txs / span, percentile(lat, 0.5)

    def render(self):
        from rich.table import Table

        tps, p50 = self.recent()
        records = self.workload.records.values()
        sent = sum(1 for r in records if r.attempts)
        committed = sum(1 for r in records if r.commits)
        phase = self.phase
        table = Table(title="ledger-devnet bench", expand=False)
        for col in ("phase", "offer/s", "elapsed", "sent", "committed", "in flight", "commit/s (5s)",
                    "p50 (5s)", "height", "idle slots"):
            table.add_column(col, justify="right")
        elapsed = time.monotonic() - phase.start if phase else 0.0
        table.add_row(phase.name if phase else "-", f"{phase.rate:.0f}" if phase else "-",
                      f"{elapsed:.1f}s", str(sent), str(committed), str(sent - committed),
                      f"{tps:.0f}", f"{p50:.2f}s" if p50 is not None else "-", str(self.next_height - 1),
                      str(self.workload.idle_slots()))
        nodes = Table(expand=False)
        for col in ("node", "CPU %", "RSS MB", "peak RSS MB"):
            nodes.add_column(col, justify="right")
        for spec in self.specs:
            s = self.samples[spec.name]
            if len(s) >= 2:
                (t1, a), (t2, b) = s[-2], s[-1]
                cpu = 100 * (b.cpu_s - a.cpu_s) / max(t2 - t1, 1e-3)
                nodes.add_row(spec.name, f"{cpu:.0f}", f"{b.rss_mb:.0f}", f"{b.hwm_mb:.0f}")
            else:
                nodes.add_row(spec.name, "-", "-", "-")
        from rich.console import Group

        return Group(table, nodes)

    async def live(self) -> None:
        if self.opts.quiet or self.console is None:
            return
        from rich.live import Live

        with Live(self.render(), console=self.console, refresh_per_second=2, transient=True) as live:
            while not self.stop_tracking:
                await asyncio.sleep(0.5)
                live.update(self.render())

    # ---------------------------------------------------------------- phases

    def step_verdict(self, phase: Phase, now: float) -> dict:
        """Did the network keep up with ``phase``'s rate?

        Judged on the transfers sent before the step's last 2 s (a transfer not
        committed yet counts with its age so far, at least 2 s): p50 within half
        of ``--target-p50`` and p90 within 1.5x of it (a short step must leave
        headroom: near capacity the queue grows slowly and a rate that looks
        fine for 8 s does not hold for 60), a backlog (sent, not committed)
        no larger than 1.5x the target's worth of the rate, no refusals, and the client always
        found an idle slot to send from.
        """
        cutoff = phase.end - 2.0
        target = self.opts.target_p50
        lat = []
        backlog = rejected = 0
        for r in self.workload.records.values():
            if r.phase != phase.name or r.submit_t is None:
                continue
            if r.status == "rejected":
                rejected += 1
            elif r.commit_t is None:
                backlog += 1
            if phase.start <= r.submit_t <= cutoff:
                lat.append((r.commit_t if r.commit_t is not None else now) - r.submit_t)
        lat.sort()
        seconds = max(phase.end - phase.start, 1e-3)
        window_start = phase.start + min(2.0, seconds / 3)
        committed = sum(b.txs for b in self.blocks if window_start <= b.seen_t <= phase.end)
        commit_rate = committed / max(phase.end - window_start, 1e-3)
        p50, p90 = percentile(lat, 0.5), percentile(lat, 0.9)
        ok = (p50 is not None and p50 <= 0.5 * target and p90 is not None and p90 <= 1.5 * target
              and backlog <= 1.5 * target * phase.rate and rejected == 0
              and phase.starved <= 0.02 * phase.rate * seconds)
        return {"phase": phase.name, "rate": phase.rate, "offered_tps": round(phase.offered / seconds, 1),
                "committed_tps": round(commit_rate, 1), "p50_s": p50, "p90_s": p90, "backlog": backlog,
                "starved": phase.starved, "rejected": rejected, "sustained": ok}

    def measure_verdict(self) -> dict:
        """Did the measured phase hold: p50 and p99 within target, commits keeping up with the offer?"""
        window = max(self.measure_end - self.measure_start, 1e-3)
        lat = sorted(r.commit_t - r.submit_t for r in self.workload.records.values()
                     if r.phase == "measure" and r.commit_t is not None and r.submit_t is not None)
        committed = sum(b.txs for b in self.blocks if self.measure_start <= b.seen_t <= self.measure_end)
        offered = sum(p.offered for p in self.phases if p.name == "measure")
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        target = self.opts.target_p50
        ok = (p50 is not None and p50 <= target and p99 is not None and p99 <= 3 * target
              and committed >= 0.9 * offered)
        return {"rate": self.chosen_rate, "offered_tps": round(offered / window, 1),
                "committed_tps": round(committed / window, 1), "p50_s": p50, "p99_s": p99, "sustained": ok}

    def retire_measure(self, attempt: int) -> None:
        """Rename a measured phase that did not hold, so the next attempt is measured alone."""
        name = f"measure-{attempt}"
        for phase in self.phases:
            if phase.name in ("measure", "warmup"):
                phase.name = f"{phase.name}-{attempt}"
        for r in self.workload.records.values():
            if r.phase == "measure":
                r.phase = name
            elif r.phase == "warmup":
                r.phase = f"warmup-{attempt}"

    async def drain(self, timeout: float) -> bool:
        """Wait until everything accepted so far is committed (or the time runs out)."""
        await self.settle_posts()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = sum(1 for r in self.workload.records.values() if r.status in ("accepted", "sent"))
            if waiting == 0:
                return True
            await asyncio.sleep(0.2)
        return False

    async def run(self, presign_more) -> None:
        opts = self.opts
        limits = httpx.Limits(max_connections=opts.inflight, max_keepalive_connections=opts.inflight)
        clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in self.specs]
        tracker_client = httpx.AsyncClient(timeout=20)
        async with tracker_client:
            status = (await tracker_client.get(self.specs[0].url + "/v1/status")).json()
            self.start_height = status["height"]
            self.next_height = self.start_height + 1
            self.t0 = time.monotonic()
            self.wall_offset = time.time() - time.monotonic()
            background = [asyncio.create_task(self.track(tracker_client)),
                          asyncio.create_task(self.sample_nodes()),
                          asyncio.create_task(self.live())]
            try:
                if opts.max:
                    rate = await self.search(clients)
                    await self.drain(60)
                else:
                    rate = opts.rate
                attempts = opts.attempts if opts.max else 1
                for attempt in range(attempts):
                    if opts.max:
                        signed = presign_more(rate)
                        self.log(f"signed {signed} more transfers for {rate:.0f} tx/s")
                    self.chosen_rate = rate
                    if opts.warmup > 0:
                        await self.offer(clients, "warmup", rate, opts.warmup)
                    self.measure_start = time.monotonic()
                    await self.offer(clients, "measure", rate, opts.duration)
                    self.measure_end = time.monotonic()
                    self.drained = await self.drain(max(30.0, 10 * opts.target_p50))
                    verdict = self.measure_verdict()
                    self.attempts.append(verdict)
                    if verdict["sustained"] or attempt == attempts - 1 or self.node_failed:
                        break
                    self.log(f"{rate:.0f} tx/s did not hold for {opts.duration:.0f} s (p50 {fmt_s(verdict['p50_s'])}, "
                             f"committed {verdict['committed_tps']:.0f}/s); measuring again at "
                             f"{rate * BACKOFF:.0f} tx/s")
                    self.retire_measure(attempt)
                    rate = round(rate * BACKOFF)
                # let the follower see the last blocks
                await asyncio.sleep(0.3)
            finally:
                self.stop_tracking = True
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await self.settle_posts()
                for c in clients:
                    await c.aclose()

    async def _step(self, clients, name: str, rate: float) -> dict:
        phase = await self.offer(clients, name, rate, self.opts.step)
        verdict = self.step_verdict(phase, time.monotonic())
        self.ramp.append(verdict)
        self.log(describe_step(verdict))
        return verdict

    async def _step_twice(self, clients, name: str, rate: float) -> bool:
        """A step, and once more if it failed: one stall (a compaction, a GC, a neighbour's burst) in a
        few seconds is not the rate's fault, a second failure is."""
        if (await self._step(clients, name, rate))["sustained"]:
            return True
        await self.drain(60)
        return (await self._step(clients, name + "-again", rate))["sustained"]

    async def search(self, clients) -> float:
        """The --max ramp: raise the rate until a step fails twice; then one bisection step."""
        best = 0.0
        failed = None
        for i, rate in enumerate(self.opts.ramp_rates()):
            if not await self._step_twice(clients, f"ramp-{i}", rate):
                failed = rate
                break
            best = rate
        if failed is not None and best > 0:
            mid = round((best + failed) / 2)
            if failed - best >= 0.08 * best:
                await self.drain(60)
                if (await self._step(clients, "ramp-refine", mid))["sustained"]:
                    best = mid
        if best == 0:
            best = self.opts.start_rate / 2
            self.log(f"even {self.opts.start_rate:.0f} tx/s was not sustained; measuring at {best:.0f}")
        return best


def describe_step(v: dict) -> str:
    return (f"ramp {v['rate']:.0f} tx/s: committed {v['committed_tps']:.0f}/s, p50 {fmt_s(v['p50_s'])}, "
            f"p90 {fmt_s(v['p90_s'])}, backlog {v['backlog']}: {'sustained' if v['sustained'] else 'NOT sustained'}")


def fmt_s(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "-"


# --------------------------------------------------------------------------- results


def summarize(bench: Bench, opts: Options, verify_per_s: float, cores: int, extra: dict) -> dict:
    records = list(bench.workload.records.values())
    t_start, t_end = bench.measure_start, bench.measure_end
    window = max(t_end - t_start, 1e-3)
    measured = [r for r in records if r.phase == "measure" and r.attempts]
    lat = sorted(r.commit_t - r.submit_t for r in measured if r.commit_t is not None)
    # split each latency at the block's proposal time (header time, the proposer's clock = ours on loopback)
    proposed_at = {b.height: b.time_ms / 1000 - bench.wall_offset for b in bench.blocks}
    to_proposal = sorted(proposed_at[r.height] - r.submit_t for r in measured
                         if r.commit_t is not None and r.height in proposed_at)
    to_commit = sorted(r.commit_t - proposed_at[r.height] for r in measured
                       if r.commit_t is not None and r.height in proposed_at)
    blocks_in = [b for b in bench.blocks if t_start <= b.seen_t <= t_end]
    committed_in_window = sum(b.txs for b in blocks_in)
    offered = sum(p.offered for p in bench.phases if p.name == "measure")
    committed_tps = committed_in_window / window
    ceiling = verify_per_s * cores / max(opts.validators, 1)
    sent = [r for r in records if r.attempts]
    committed = [r for r in sent if r.commits >= 1]
    duplicates = [r.txid for r in sent if r.commits > 1]
    rejected = [r for r in sent if r.commits == 0 and r.status == "rejected"]
    lost = [r.txid for r in sent if r.commits == 0 and r.status != "rejected"]
    rejected_by = collections.Counter(r.code for r in rejected)

    nodes = []
    for spec in bench.specs:
        s = bench.samples.get(spec.name, [])
        in_window = [x for x in s if t_start <= x[0] <= t_end]
        cpu_window = (in_window[-1][1].cpu_s - in_window[0][1].cpu_s) if len(in_window) >= 2 else None
        span = (in_window[-1][0] - in_window[0][0]) if len(in_window) >= 2 else None
        nodes.append({
            "name": spec.name,
            "pid": bench.pids.get(spec.name),
            "cpu_s_total": round(s[-1][1].cpu_s, 2) if s else None,
            "cpu_s_measured": round(cpu_window, 2) if cpu_window is not None else None,
            "cpu_util_measured": round(cpu_window / span, 3) if cpu_window is not None and span else None,
            "rss_mb": round(s[-1][1].rss_mb, 1) if s else None,
            "rss_peak_mb": round(max(x[1].hwm_mb for x in s), 1) if s else None,
        })
    peaks = [n["rss_peak_mb"] for n in nodes if n["rss_peak_mb"] is not None]
    utils = [n["cpu_util_measured"] for n in nodes if n["cpu_util_measured"] is not None]
    cpu_ms_per_tx = (1000 * sum(utils) * window / committed_in_window
                     if committed_in_window and len(utils) == len(nodes) else None)
    all_committed = sum(b.txs for b in bench.blocks)
    disk = extra.pop("disk", {})
    disk_per_tx = None
    if disk and all_committed:
        deltas = [after - before for before, after in disk.values()]
        disk_per_tx = statistics.mean(deltas) / all_committed
    block_seconds = window
    result = {
        "ok": not lost and not duplicates and extra.get("app_hash_consistent", False),
        "mode": "max" if opts.max else "rate",
        "validators": opts.validators,
        "rate": bench.chosen_rate,
        "duration_s": round(window, 3),
        "warmup_s": opts.warmup,
        "offered_tps": round(offered / window, 1),
        "committed_tps": round(committed_tps, 1),
        "latency_p50_s": percentile(lat, 0.5),
        "latency_p90_s": percentile(lat, 0.9),
        "latency_p99_s": percentile(lat, 0.99),
        "latency_max_s": lat[-1] if lat else None,
        "latency_mean_s": statistics.mean(lat) if lat else None,
        "submit_to_proposal_p50_s": percentile(to_proposal, 0.5),
        "proposal_to_commit_p50_s": percentile(to_commit, 0.5),
        "blocks": len(blocks_in),
        "blocks_per_s": round(len(blocks_in) / block_seconds, 2),
        "txs_per_block": round(committed_in_window / len(blocks_in), 1) if blocks_in else 0.0,
        "node_rss_mb": max(peaks) if peaks else None,
        "node_cpu_ms_per_tx": round(cpu_ms_per_tx, 3) if cpu_ms_per_tx is not None else None,
        "node_cpu_ms_per_block": (round(1000 * sum(utils) * window / len(blocks_in), 1)
                                  if blocks_in and len(utils) == len(nodes) else None),
        "nodes": nodes,
        "disk_bytes_per_tx": round(disk_per_tx, 1) if disk_per_tx is not None else None,
        "verify_per_s": round(verify_per_s, 1),
        "cores": cores,
        "ceiling_tps": round(ceiling, 1),
        "ratio": round(committed_tps / ceiling, 4) if ceiling else None,
        "submitted": len(sent),
        "committed": len(committed),
        "rejected": len(rejected),
        "rejected_by_code": dict(rejected_by),
        "rejections_seen": dict(bench.rejections),
        "transport_errors": dict(bench.errors),
        "lost": len(lost),
        "lost_txids": lost[:20],
        "duplicates": len(duplicates),
        "starved": sum(p.starved for p in bench.phases if p.name == "measure"),
        "slots": len(bench.workload.slots),
        "accounts": opts.accounts,
        "utxos": opts.utxos,
        "batch": opts.batch,
        "ramp": bench.ramp,
        "attempts": bench.attempts,
        "sustained": bench.attempts[-1]["sustained"] if bench.attempts else None,
        "load_average": list(os.getloadavg()),
        "client_cpu_s": extra.pop("client_cpu_s", None),
    }
    result["params"] = opts.params
    result["config_overrides"] = opts.overrides
    result.update(extra)
    return result


def write_plot(bench: Bench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = bench.t0
    records = [r for r in bench.workload.records.values() if r.submit_t is not None]
    end = max([b.seen_t for b in bench.blocks] + [t0 + 1]) - t0
    bins = int(math.ceil(end)) + 1
    offered = [0] * bins
    committed = [0] * bins
    lat_bins: list[list[float]] = [[] for _ in range(bins)]
    for r in records:
        i = int(r.submit_t - t0)
        if 0 <= i < bins:
            offered[i] += 1
            if r.commit_t is not None:
                lat_bins[i].append(r.commit_t - r.submit_t)
    for b in bench.blocks:
        i = int(b.seen_t - t0)
        if 0 <= i < bins:
            committed[i] += b.txs
    xs = list(range(bins))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax1.plot(xs, offered, label="offered tx/s", color="tab:gray", drawstyle="steps-post")
    ax1.plot(xs, committed, label="committed tx/s", color="tab:blue", drawstyle="steps-post")
    ax1.set_ylabel("transactions / s")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    for q, color in ((0.5, "tab:green"), (0.99, "tab:red")):
        ys = [percentile(sorted(v), q) if v else float("nan") for v in lat_bins]
        ax2.plot(xs, ys, label=f"p{int(q * 100)} latency (by send second)", color=color)
    ax2.set_ylabel("submit → commit (s)")
    ax2.set_xlabel("seconds since load start")
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)
    for p in bench.phases:
        if p.name == "measure":
            for ax in (ax1, ax2):
                ax.axvspan(p.start - t0, p.end - t0, color="tab:blue", alpha=0.06)
    fig.suptitle(f"ledger bench: {len(bench.specs)} validators, measured at {bench.chosen_rate:.0f} tx/s offered")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_summary(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title="bench result")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def f(v, spec="{:.3f}"):
        return "-" if v is None else spec.format(v)

    rows = [
        ("mode / rate", f"{result['mode']} / {result['rate']:.0f} tx/s"),
        ("offered tx/s", f(result["offered_tps"], "{:.1f}")),
        ("committed tx/s", f(result["committed_tps"], "{:.1f}")),
        ("latency p50 / p90 / p99", f"{f(result['latency_p50_s'])} / {f(result['latency_p90_s'])} / "
                                    f"{f(result['latency_p99_s'])} s"),
        ("p50 split: send->proposal, proposal->seen", f"{f(result['submit_to_proposal_p50_s'])} / "
                                                      f"{f(result['proposal_to_commit_p50_s'])} s"),
        ("blocks (blocks/s)", f"{result['blocks']} ({result['blocks_per_s']:.2f}/s)"),
        ("txs per block", f(result["txs_per_block"], "{:.1f}")),
        ("peak RSS per node", f(result["node_rss_mb"], "{:.0f} MB")),
        ("node CPU per committed tx (all nodes)", f(result["node_cpu_ms_per_tx"], "{:.3f} ms")),
        ("LevelDB bytes per tx", f(result["disk_bytes_per_tx"], "{:.0f}")),
        ("verify/s (1 core) x cores", f"{result['verify_per_s']:.0f} x {result['cores']}"),
        ("ceiling tx/s", f(result["ceiling_tps"], "{:.0f}")),
        ("ratio to ceiling", f(result["ratio"], "{:.3f}")),
        ("submitted / committed / rejected", f"{result['submitted']} / {result['committed']} / {result['rejected']}"),
        ("lost / duplicated", f"{result['lost']} / {result['duplicates']}"),
        ("same app hash on all nodes", str(result.get("app_hash_consistent"))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for n in result["nodes"]:
        table.add_row(f"  {n['name']}", f"cpu {f(n['cpu_util_measured'], '{:.2f}')} cores, "
                                        f"peak {f(n['rss_peak_mb'], '{:.0f}')} MB")
    console.print(table)


# --------------------------------------------------------------------------- consistency


def check_app_hashes(specs: list[NodeSpec], timeout_s: float = 30.0) -> tuple[bool, int, dict[str, str]]:
    """All nodes' app hash at a common height (the highest that all have reached)."""
    client = httpx.Client(timeout=10)
    try:
        deadline = time.monotonic() + timeout_s
        statuses = [node_status(s) for s in specs]
        heights = [s["height"] for s in statuses if s]
        if len(heights) != len(specs):
            return False, 0, {}
        target = max(heights)
        while time.monotonic() < deadline:
            statuses = [node_status(s) for s in specs]
            if all(s and s["height"] >= target for s in statuses):
                break
            time.sleep(0.1)
        hashes = {}
        for spec in specs:
            r = client.get(spec.url + f"/v1/blocks/{target}")
            if r.status_code != 200:
                return False, target, hashes
            hashes[spec.name] = r.json()["header"]["app_hash"]
        return len(set(hashes.values())) == 1, target, hashes
    finally:
        client.close()


# --------------------------------------------------------------------------- entry points


def run_bench(args: argparse.Namespace) -> int:
    """``ledger-devnet bench``: returns the exit code (0 ok, 1 lost/duplicated/diverged, 2 could not run)."""
    from rich.console import Console

    try:
        opts = Options.from_args(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    out = Console()

    def log(message: str) -> None:
        if not opts.quiet:
            console.log(message)

    try:
        return _run(opts, console, out, log)
    except BenchError as exc:
        console.print(f"[red]bench failed:[/red] {exc}")
        return 2


def _run(opts: Options, console, out, log) -> int:
    cores = machine_cores()
    verify_per_s = measure_verify_rate(opts.verify_seconds)
    log(f"ceiling: {verify_per_s:.0f} verifications/s per core x {cores} cores / {opts.validators} validators "
        f"= {verify_per_s * cores / opts.validators:.0f} tx/s")
    timings: dict[str, float] = {}
    started: list[NodeSpec] = []
    temp_base = None
    extra: dict = {}
    try:
        if opts.attach is not None:
            specs = load_network(opts.attach)
            opts.validators = len(specs)
            status = node_status(specs[0])
            if status is None:
                raise BenchError(f"{specs[0].name} at {specs[0].url} does not answer")
            t = time.perf_counter()
            workload = fund_attached(opts, specs, status["chain_id"], find_faucet_key(opts.attach, opts.faucet),
                                     log)
            timings["fund_s"] = time.perf_counter() - t
        else:
            if opts.home is not None:
                base = opts.home
            else:
                base = temp_base = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
            specs, workload, t_fresh = build_fresh(opts, base, log)
            timings.update(t_fresh)
            t = time.perf_counter()
            for spec in specs:
                start_node(spec)
                started.append(spec)
            wait = 60 + (opts.utxos + len(workload.slots)) * 0.0005 * len(specs)
            if not wait_all_height(specs, 1, wait):
                raise BenchError(f"the devnet did not reach height 1 within {wait:.0f} s; logs in {base}")
            timings["start_s"] = time.perf_counter() - t
            log(f"devnet of {len(specs)} validators up in {timings['start_s']:.1f} s ({base})")
        first, _whole = transfer_budget(opts)
        t = time.perf_counter()
        signed = workload.presign(first)
        timings["presign_s"] = time.perf_counter() - t
        log(f"pre-signed {signed} transfers in {timings['presign_s']:.1f} s over {len(workload.slots)} slots")
        disk_before = {s.name: dir_bytes(s.home / DATA_DIR) for s in specs}
        bench = Bench(opts, specs, workload, log, console)

        def presign_more(rate: float) -> int:
            return workload.presign(int(rate * (opts.warmup + opts.duration) * 1.05) + opts.batch)

        cpu0 = time.process_time()
        asyncio.run(bench.run(presign_more))
        extra["client_cpu_s"] = round(time.process_time() - cpu0, 2)
        consistent, height, hashes = check_app_hashes(specs)
        extra["app_hash_consistent"] = consistent
        extra["app_hash_height"] = height
        extra["app_hashes"] = hashes
        extra["disk"] = {s.name: (disk_before[s.name], dir_bytes(s.home / DATA_DIR)) for s in specs}
        extra["setup"] = {k: round(v, 2) for k, v in timings.items()}
        extra["drained"] = bench.drained
        if bench.node_failed:
            extra["node_failed"] = bench.node_failed
        result = summarize(bench, opts, verify_per_s, machine_cores(), extra)
        if bench.node_failed:
            result["ok"] = False
        print_summary(result, out)
        if opts.json is not None:
            opts.json.write_text(json.dumps(result, indent=2) + "\n")
        if opts.plot is not None:
            write_plot(bench, opts.plot)
        if not result["ok"]:
            console.print(f"[red]FAILED[/red]: lost {result['lost']}, duplicated {result['duplicates']}, "
                          f"app hashes consistent: {result['app_hash_consistent']}"
                          + (f", {bench.node_failed}" if bench.node_failed else ""))
            return 1
        return 0
    finally:
        for spec in started:
            try:
                stop_node(spec)
            except (ProcessLookupError, OSError):
                pass
        if temp_base is not None and not opts.keep:
            shutil.rmtree(temp_base, ignore_errors=True)


def wait_all_height(specs: list[NodeSpec], height: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = [node_status(s) for s in specs]
        if all(st is not None and st["height"] >= height for st in statuses):
            return True
        for spec in specs:
            pid = read_pid(spec.home)
            if pid is not None and not pid_alive(pid):
                raise BenchError(f"{spec.name} exited during start; see {spec.home / 'stdout.log'}")
        time.sleep(0.2)
    return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devnet.bench",
                                     description="Benchmark committed throughput and latency of a local devnet.")
    add_bench_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_bench(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
