"""Fault drills: a bank workload on a real devnet under crashes, pauses,
partitions, slow links, overlapping faults, skewed clocks and Byzantine
validators, then a check that nothing was lost and the chain kept moving.

    python -m devnet.drill --seed 1 --duration 300
    ledger-devnet drill --seed 1 --duration 300 --faults kill,partition --json drill.json

The drill starts ``--validators`` real ``ledger-node`` processes on loopback.
Their peer URLs point at a per-link proxy (``devnet/proxy.py``) so links can
be cut and slowed one by one; clients talk to the nodes' own ports.

**Workload** (Jepsen's bank): ``--accounts`` accounts, each funded in
genesis with a few outputs.  ``--clients`` concurrent clients send random
transfers between them (sometimes two inputs, sometimes a deliberate double
spend sent to two nodes at once) to random nodes with ``?wait=commit``, and
read balances from random nodes.  Every acknowledgement (HTTP 200
"committed" with height and block hash) and every balance read (node, the
height the node reported, the balance) is recorded.

**Faults** are planned from ``--seed`` before the run (the same seed gives the
same schedule) and applied one after the other, each followed by a pause to
recover:

- ``kill``: SIGKILL one validator, restart it a few seconds later;
- ``killall``: SIGKILL every validator at once, restart them all;
- ``pause``: SIGSTOP one or two validators, SIGCONT later;
- ``partition``: isolate one validator, split 2/2, or a ring of majorities
  (every node sees a majority, no two nodes the same one), then heal;
- ``slow``: delay, jitter, retransmission stalls and resets on every link;
- ``twin``: a fifth process with a copy of one validator's key (own home, own
  signer state, peered with everyone), so that key signs conflicting votes;
- ``lag``: overlapping faults: SIGSTOP one validator until the others are 3
  heights ahead, take a second one down (SIGSTOP or SIGKILL), SIGCONT the
  first: with 3 of 4 up the chain must move on; then heal the second;
- ``clock``: restart one validator with its clock off by minutes to years
  (``clock_offset_ms``), later with the true time again;
- ``tamper``: replace one validator's process by a Byzantine one
  (``devnet/byzantine.py``) that sends some peers tampered proposals and
  serves them tampered blocks (block sync, round-state answers; same block
  id, one transaction signature changed), while a targeted honest node lags
  behind with only the Byzantine one to fetch from; then restore the honest one.

The new kinds live in ``devnet/drill_faults.py``, with the liveness watch: after
every heal a new height must follow within 30 s (the next fault waits for it).

**Checks** once every fault is healed and the nodes converged: every node has
the same block hash and app hash at every height; replaying the chain from
genesis, no output is spent twice and every input exists; the balances the
nodes serve for every account and validator at every height
(``balance?height=H``) add up to the genesis supply and equal the replay;
every acknowledged transaction is in the chain at the height and block it
was acknowledged with; every balance read matches the replay at the height
the node reported; the twin's equivocation is in ``GET /v1/evidence`` of an
honest node (with valid signatures) and no honest validator is accused; no
request got a 500; no node died on its own; the chain commits a transfer after
healing; no heal is followed by a stall longer than the liveness bound (the
verdict reports the longest); block times strictly increase and lie within
the honest clocks (after the drill's start, before the drill saw the height,
5 s slack each); while a Byzantine validator tampered, the chain moved on and
no honest node stopped.  Any violation makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from devnet import drill_faults
from devnet.network import NodeSpec, devnet_params, free_ports, start_node, write_network
from devnet.proxy import LinkProxy
from genesis.build import derive_private_key, make_genesis
from node.config import NodeConfig, load_config, save_config
from node.crypto import address_hash, derive_public_key, encode_address, verify_signature
from node.home import init_home
from node.ledger.state import genesis_txid
from node.ledger.transactions import COIN, OutPoint, TxOutput, fee_outpoint, sign_transaction

FAULT_KINDS = ("kill", "killall", "pause", "partition", "slow", "twin", "lag", "clock", "tamper")
PARTITION_SHAPES = ("isolate", "split", "ring")
TWIN_NAME = "twin"

WARMUP_S = 4.0
TAIL_S = 4.0
MIN_DURATION_S = {"kill": 3.0, "killall": 0.5, "pause": 3.0, "partition": 4.0, "slow": 4.0, "twin": 15.0,
                  "lag": 12.0, "clock": 10.0, "tamper": 15.0}
MAX_DURATION_S = {"kill": 10.0, "killall": 3.0, "pause": 8.0, "partition": 12.0, "slow": 12.0, "twin": 35.0,
                  "lag": 25.0, "clock": 25.0, "tamper": 30.0}
GAP_S = (3.0, 6.0)
FAULT_WEIGHTS = {"kill": 3, "killall": 1, "pause": 2, "partition": 3, "slow": 2, "twin": 1, "lag": 2, "clock": 1,
                 "tamper": 1}
"""How often each kind is drawn once every requested kind has had its turn."""

NODE_OVERRIDES = {
    "log_level": "INFO",
    "commit_wait_ms": 10_000,
    "min_height_wait_ms": 4_000,
    "peer_timeout_ms": 2_000,
    "sync_interval_ms": 500,
}
COMMIT_WAIT_S = NODE_OVERRIDES["commit_wait_ms"] / 1000
SUBMIT_TIMEOUT = httpx.Timeout(COMMIT_WAIT_S + 5, connect=2.0)
READ_TIMEOUT = httpx.Timeout(NODE_OVERRIDES["min_height_wait_ms"] / 1000 + 4, connect=2.0)
GENESIS_OUTPUT = 1_000 * COIN

# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class FaultStep:
    """One planned perturbation."""

    at_s: float
    """Seconds after the workload starts."""
    kind: str
    """One of FAULT_KINDS."""
    duration_s: float
    """How long the fault lasts before it is healed (the twin may leave early once caught)."""
    detail: dict = field(default_factory=dict)
    """Targets and parameters, fixed at plan time."""

    def describe(self) -> str:
        d = self.detail
        if self.kind == "kill":
            return f"SIGKILL {d['node']}, restart after {self.duration_s:.1f}s"
        if self.kind == "killall":
            return f"SIGKILL all validators, restart after {self.duration_s:.1f}s"
        if self.kind == "pause":
            return f"SIGSTOP {', '.join(d['nodes'])} for {self.duration_s:.1f}s"
        if self.kind == "partition":
            return f"partition {d['shape']} {d['label']} for {self.duration_s:.1f}s"
        if self.kind == "slow":
            return (f"slow links delay={d['delay_ms']}ms jitter={d['jitter_ms']}ms loss={d['loss']:.0%} "
                    f"reset={d['reset']:.1%} for {self.duration_s:.1f}s")
        if self.kind == "twin":
            return f"Byzantine twin of {d['victim']} for up to {self.duration_s:.1f}s"
        return drill_faults.describe(self)


def validator_names(count: int) -> list[str]:
    return [f"validator-{i}" for i in range(count)]


def ring_cut_pairs(order: list[str]) -> list[tuple[str, str]]:
    """Pairs to cut so each node keeps the nearest ring neighbours making up a bare majority with itself."""
    n = len(order)
    majority = n // 2 + 1
    reach = (majority - 1 + 1) // 2  # neighbours on each side
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            distance = min(j - i, n - (j - i))
            if distance > reach:
                pairs.append(tuple(sorted((order[i], order[j]))))
    return pairs  # type: ignore[return-value]


def _partition_detail(rng: random.Random, names: list[str], shape: str) -> dict:
    if shape == "isolate":
        lone = rng.choice(names)
        groups = [[lone], [n for n in names if n != lone]]
        pairs = [tuple(sorted((lone, n))) for n in names if n != lone]
        label = f"{lone} | rest"
    elif shape == "split":
        shuffled = names[:]
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        groups = [sorted(shuffled[:half]), sorted(shuffled[half:])]
        pairs = [tuple(sorted((a, b))) for a in groups[0] for b in groups[1]]
        label = f"{','.join(groups[0])} | {','.join(groups[1])}"
    else:
        order = names[:]
        rng.shuffle(order)
        groups = []
        pairs = ring_cut_pairs(order)
        label = "ring " + "-".join(n.rsplit("-", 1)[-1] for n in order)
    return {"shape": shape, "groups": groups, "cut": [list(p) for p in pairs], "label": label}


def _detail(rng: random.Random, kind: str, names: list[str], shape_cycle: list[str]) -> dict:
    if kind == "kill":
        return {"node": rng.choice(names)}
    if kind == "killall":
        return {"nodes": list(names)}
    if kind == "pause":
        count = 2 if len(names) >= 4 and rng.random() < 0.25 else 1
        return {"nodes": sorted(rng.sample(names, count))}
    if kind == "partition":
        shape = shape_cycle.pop(0) if shape_cycle else rng.choice(PARTITION_SHAPES)
        return _partition_detail(rng, names, shape)
    if kind == "slow":
        return {"delay_ms": rng.choice([20, 50, 100, 200]), "jitter_ms": rng.choice([0, 20, 100]),
                "loss": rng.choice([0.0, 0.02, 0.05, 0.1]), "reset": rng.choice([0.0, 0.005, 0.02])}
    if kind == "twin":
        return {"victim": rng.choice(names)}
    return drill_faults.fault_detail(rng, kind, names)


def plan_faults(seed: int, duration_s: float, kinds: list[str], validators: int) -> list[FaultStep]:
    """The fault schedule for ``seed``: every kind at least once (``kill`` before ``killall``), then random.

    Faults run one after another with a recovery gap between them, inside
    ``[WARMUP_S, duration_s - TAIL_S]``.  A required kind that does not fit at
    full length is shortened to its minimum; one that does not fit even then
    is left out (the verdict lists what ran).
    """
    rng = random.Random(f"drill-plan-{seed}")
    names = validator_names(validators)
    kinds = [k for k in kinds if validators >= drill_faults.MIN_VALIDATORS.get(k, 1)]
    required = [k for k in FAULT_KINDS if k in kinds]
    if "partition" in required and duration_s >= 120:
        required += ["partition"] * (len(PARTITION_SHAPES) - 1)  # room for every shape
    rng.shuffle(required)
    if "kill" in required and "killall" in required and required.index("killall") < required.index("kill"):
        i, j = required.index("killall"), required.index("kill")
        required[i], required[j] = required[j], required[i]
    shapes = list(PARTITION_SHAPES)
    rng.shuffle(shapes)
    steps: list[FaultStep] = []
    t = WARMUP_S
    end = duration_s - TAIL_S
    for _ in range(1000):
        if not kinds or t >= end:
            break
        kind = required[0] if required else rng.choices(kinds, [FAULT_WEIGHTS[k] for k in kinds])[0]
        length = round(rng.uniform(MIN_DURATION_S[kind], MAX_DURATION_S[kind]), 1)
        if t + length > end:
            if t + MIN_DURATION_S[kind] <= end:
                length = round(end - t, 1)
            elif required:
                required.pop(0)  # does not fit even at its shortest
                continue
            else:
                break
        if required:
            required.pop(0)
        steps.append(FaultStep(round(t, 1), kind, length, _detail(rng, kind, names, shapes)))
        t += length + rng.uniform(*GAP_S)
    twins = [s for s in steps if s.kind == "twin"]
    for step in twins[1:]:
        step.detail["victim"] = twins[0].detail["victim"]  # one twin home, one stolen key per drill
    return steps


# --------------------------------------------------------------------------- the network


class DrillNetwork:
    """Validator homes and processes, the per-link proxy, and the twin."""

    def __init__(self, base: Path, seed: int, validators: int, accounts: int, outputs_per_account: int,
                 with_twin: bool, twin_victim: str | None, out=print):
        self.base = base
        self.seed = seed
        self.out = out
        self.started_wall = time.time()
        """Wall-clock time before the genesis was made: no honest block time is earlier."""
        self.names = validator_names(validators)
        seed_bytes = f"drill-{seed}".encode()
        self.account_keys = [derive_private_key(seed_bytes, f"account-{i}") for i in range(accounts)]
        self.account_addresses = [address_hash(derive_public_key(k)) for k in self.account_keys]
        allocations = [(self.account_addresses[i], GENESIS_OUTPUT)
                       for _ in range(outputs_per_account) for i in range(accounts)]
        self.genesis, self.validator_keys = make_genesis(f"drill-{seed}", validators, allocations,
                                                         params=devnet_params(), seed=seed_bytes)
        self.chain_id = self.genesis.chain_id
        self.supply = self.genesis.total_supply
        self.with_twin = with_twin
        self.twin_victim = twin_victim
        self.proxy = LinkProxy(seed=seed)
        self.specs: dict[str, NodeSpec] = {}
        self.procs: dict[str, subprocess.Popen | None] = {}
        self.all_procs: list[subprocess.Popen] = []
        self.expected: dict[str, bool] = {}
        """Whether a process should be running now (for crash detection)."""
        self.paused: set[str] = set()
        self.unexpected_exits: list[dict] = []

    @property
    def validator_addresses(self) -> dict[str, bytes]:
        return {v.name: v.address for v in self.genesis.validators}

    def genesis_outputs(self) -> dict[int, list[tuple[OutPoint, int]]]:
        """Account index -> its genesis outputs."""
        out: dict[int, list[tuple[OutPoint, int]]] = {i: [] for i in range(len(self.account_keys))}
        index_of = {a: i for i, a in enumerate(self.account_addresses)}
        txid = genesis_txid(self.chain_id)
        for n, alloc in enumerate(self.genesis.allocations):
            out[index_of[alloc.address]].append((OutPoint(txid, n), alloc.amount))
        return out

    async def setup(self) -> None:
        specs = write_network(self.base, self.genesis, self.validator_keys, config_overrides=NODE_OVERRIDES)
        self.specs = {s.name: s for s in specs}
        if self.with_twin:
            taken = {s.port for s in specs}
            port = next(p for p in free_ports(len(taken) + 1) if p not in taken)
            self.specs[TWIN_NAME] = NodeSpec(TWIN_NAME, self.base / TWIN_NAME, "127.0.0.1", port)
        members = list(self.specs)
        for src in members:
            for dst in members:
                if src != dst and not (src == TWIN_NAME and dst == TWIN_NAME):
                    self.proxy.add_link(src, dst, self.specs[dst].port)
        await self.proxy.start(avoid={s.port for s in self.specs.values()})
        for name in self.names:
            home = self.specs[name].home
            config = load_config(home)
            peers = tuple(self.proxy.url(name, other) for other in members if other != name)
            save_config(home, NodeConfig(**{**asdict(config), "peers": peers}))
        if self.with_twin:
            spec = self.specs[TWIN_NAME]
            peers = tuple(self.proxy.url(TWIN_NAME, other) for other in self.names)
            config = NodeConfig(name=TWIN_NAME, host=spec.host, port=spec.port, peers=peers,
                                log_file=str(spec.home / "node.log")).with_overrides(NODE_OVERRIDES)
            init_home(spec.home, self.base / "genesis.json", self.validator_keys[self.twin_victim], config,
                      force=True)
        for name in members:
            self.procs[name] = None
            self.expected[name] = False

    # ------------------------------------------------------------------ processes

    def start(self, name: str) -> int:
        proc = start_node(self.specs[name])
        self.procs[name] = proc
        self.all_procs.append(proc)
        self.expected[name] = True
        self.paused.discard(name)
        return proc.pid

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    async def kill(self, names: list[str]) -> list[int]:
        """SIGKILL ``names`` at once (by pid) and reap them."""
        pids = []
        for name in names:
            self.expected[name] = False
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                pids.append(proc.pid)
        for name in names:
            proc = self.procs.get(name)
            if proc is not None:
                for _ in range(200):
                    if proc.poll() is not None:
                        break
                    await asyncio.sleep(0.05)
            self.paused.discard(name)
        return pids

    def pause(self, name: str) -> int | None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return None
        os.kill(proc.pid, signal.SIGSTOP)
        self.paused.add(name)
        return proc.pid

    def resume(self, name: str) -> int | None:
        proc = self.procs.get(name)
        self.paused.discard(name)
        if proc is None or proc.poll() is not None:
            return None
        os.kill(proc.pid, signal.SIGCONT)
        return proc.pid

    async def terminate(self, name: str, timeout_s: float = 8.0) -> None:
        """SIGCONT + SIGTERM, then SIGKILL if it lingers; by pid."""
        self.expected[name] = False
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
        for _ in range(int(timeout_s / 0.05)):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        for _ in range(100):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)

    def check_crashes(self) -> list[dict]:
        """Processes that should run but exited on their own; each is reported once and restarted."""
        found = []
        for name, proc in self.procs.items():
            if self.expected.get(name) and proc is not None and proc.poll() is not None:
                record = {"node": name, "pid": proc.pid, "exit_code": proc.returncode,
                          "log_tail": self.log_tail(name, 15)}
                self.unexpected_exits.append(record)
                found.append(record)
                self.out(f"!! {name} (pid {proc.pid}) exited on its own with code {proc.returncode}")
                self.start(name)
        return found

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.specs[name].home / "stdout.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Stop every process this drill started (by pid), synchronously; safe to call twice."""
        for proc in self.all_procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for proc in self.all_procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def url(self, name: str) -> str:
        return self.specs[name].url


# --------------------------------------------------------------------------- the bank workload


@dataclass
class Submission:
    txid: str
    node: str
    t: float
    inputs: list[tuple[str, int]]
    double: bool = False
    outcome: str = "in-flight"
    """ack, rejected, unsent, unknown (then late-commit or never-committed after the drill)."""
    status: int | None = None
    code: str = ""
    height: int | None = None
    block_hash: str | None = None


@dataclass
class Read:
    node: str
    address: str
    height: int
    balance: int
    t: float
    source: str = "balance"


class Bank:
    """Client-side knowledge of spendable outputs: only a guide for making mostly-valid transfers;
    the checks never trust it."""

    def __init__(self, net: DrillNetwork, rng: random.Random):
        self.net = net
        self.rng = rng
        self.keys = net.account_keys
        self.addresses = net.account_addresses
        self.texts = [encode_address(a) for a in self.addresses]
        self.available: dict[int, dict[OutPoint, int]] = {i: dict(outs) for i, outs in net.genesis_outputs().items()}
        self.busy: set[OutPoint] = set()
        self.spent: set[OutPoint] = set()
        self.limbo: dict[str, tuple[Submission, list[OutPoint], list[tuple[int, OutPoint, int]], int]] = {}
        """txid -> (submission, inputs, [(account, outpoint, amount)] outputs, misses)."""

    def take(self, account: int, count: int) -> list[tuple[OutPoint, int]]:
        pool = self.available[account]
        picks = self.rng.sample(sorted(pool, key=lambda o: (o.txid, o.index)), min(count, len(pool)))
        out = []
        for op in picks:
            out.append((op, pool.pop(op)))
            self.busy.add(op)
        return out

    def give_back(self, account: int, items: list[tuple[OutPoint, int]]) -> None:
        for op, amount in items:
            self.busy.discard(op)
            if op not in self.spent:
                self.available[account][op] = amount

    def settle(self, inputs: list[OutPoint], outputs: list[tuple[int, OutPoint, int]]) -> None:
        for op in inputs:
            self.busy.discard(op)
            self.spent.add(op)
        for account, op, amount in outputs:
            if op not in self.spent:
                self.available[account][op] = amount

    def forget(self, inputs: list[OutPoint]) -> None:
        for op in inputs:
            self.busy.discard(op)

    def refresh(self, account: int, utxos: list[dict]) -> None:
        fresh = {}
        for u in utxos:
            op = OutPoint(bytes.fromhex(u["txid"]), int(u["index"]))
            if op not in self.busy and op not in self.spent:
                fresh[op] = int(u["amount"])
        self.available[account] = fresh


class Workload:
    """Concurrent bank clients, a resolver for unknown outcomes, and the record of everything they saw."""

    def __init__(self, net: DrillNetwork, seed: int, clients: int, out=print):
        self.net = net
        self.rng = random.Random(f"drill-workload-{seed}")
        self.bank = Bank(net, self.rng)
        self.clients = clients
        self.out = out
        self.submissions: list[Submission] = []
        self.acks: dict[str, Submission] = {}
        self.reads: list[Read] = []
        self.server_errors: list[dict] = []
        self.ryw_violations: list[dict] = []
        self.double_pairs: list[tuple[str, str]] = []
        self.counts: Counter = Counter()
        self.stop = asyncio.Event()
        self.t0 = time.monotonic()
        self.http: httpx.AsyncClient | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _node(self) -> str:
        return self.rng.choice(self.net.names)

    def _server_error(self, node: str, method: str, path: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:300]
        self.server_errors.append({"node": node, "method": method, "path": path, "status": response.status_code,
                                   "body": body, "t": round(self.now(), 2)})

    async def submit(self, sub: Submission, tx_hex: str) -> None:
        """POST ?wait=commit to sub.node and classify the outcome."""
        assert self.http is not None
        url = self.net.url(sub.node) + "/v1/txs"
        try:
            r = await self.http.post(url, params={"wait": "commit"}, json={"tx": tx_hex}, timeout=SUBMIT_TIMEOUT)
        except httpx.ConnectError:
            sub.outcome = "unsent"
            return
        except (httpx.HTTPError, OSError) as exc:
            sub.outcome = "unknown"
            sub.code = type(exc).__name__
            return
        sub.status = r.status_code
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code == 200 and body.get("status") == "committed":
            sub.outcome = "ack"
            sub.height = int(body["height"])
            sub.block_hash = body["block_hash"]
            return
        sub.code = (body.get("error") or {}).get("code", "") if isinstance(body, dict) else ""
        if r.status_code >= 500 and r.status_code not in (503, 504):
            self._server_error(sub.node, "POST", "/v1/txs", r)
        if r.status_code in (504,) or r.status_code >= 500 and r.status_code != 503:
            sub.outcome = "unknown"  # admitted (or maybe admitted), not seen committed in time
        elif r.status_code == 409 and sub.code == "txn-mempool-conflict":
            sub.outcome = "rejected"
        else:
            sub.outcome = "rejected"

    def _build(self, account: int, inputs: list[tuple[OutPoint, int]], dest: int, fraction: float):
        from node.ledger.transactions import Transaction  # noqa: F401  (type only)
        total = sum(a for _, a in inputs)
        fee = self.rng.randint(100, 2_000)
        spendable = total - fee
        if spendable < 2:
            return None
        amount = max(1, int(spendable * fraction))
        change = spendable - amount
        outputs = [TxOutput(self.bank.addresses[dest], amount)]
        if change > 0:
            outputs.append(TxOutput(self.bank.addresses[account], change))
        tx = sign_transaction(self.net.chain_id, [(op, self.bank.keys[account]) for op, _ in inputs], outputs)
        outs = [(dest, OutPoint(tx.txid, 0), amount)]
        if change > 0:
            outs.append((account, OutPoint(tx.txid, 1), change))
        return tx, outs

    def _after(self, sub: Submission, account: int, inputs: list[tuple[OutPoint, int]], outs) -> None:
        ops = [op for op, _ in inputs]
        self.counts[sub.outcome] += 1
        if sub.outcome == "ack":
            self.acks[sub.txid] = sub
            self.bank.settle(ops, outs)
        elif sub.outcome == "unsent":
            self.bank.give_back(account, inputs)
        elif sub.outcome == "unknown":
            self.bank.limbo[sub.txid] = (sub, ops, outs, 0)
        else:  # rejected: spent elsewhere, conflicting, or catching up; let a refresh tell
            if sub.code in ("catching-up", "mempool-full"):
                self.bank.give_back(account, inputs)
            else:
                self.bank.forget(ops)

    async def transfer(self) -> None:
        bank = self.bank
        candidates = [i for i, pool in bank.available.items() if pool]
        if not candidates:
            await self.refresh(self.rng.randrange(len(bank.keys)))
            await asyncio.sleep(0.2)
            return
        account = self.rng.choice(candidates)
        inputs = bank.take(account, 2 if self.rng.random() < 0.15 else 1)
        dest = self.rng.choice([i for i in range(len(bank.keys)) if i != account])
        built = self._build(account, inputs, dest, self.rng.choice([0.05, 0.3, 0.5, 0.9]))
        if built is None:
            bank.forget([op for op, _ in inputs])
            return
        tx, outs = built
        sub = Submission(tx.txid.hex(), self._node(), round(self.now(), 3),
                         [(op.txid.hex(), op.index) for op, _ in inputs])
        self.submissions.append(sub)
        await self.submit(sub, tx.encoded.hex())
        self._after(sub, account, inputs, outs)
        if sub.outcome == "unsent":
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def double_spend(self) -> None:
        """Two transfers spending the same output, sent at once to two different nodes: at most one may commit."""
        bank = self.bank
        candidates = [i for i, pool in bank.available.items() if pool]
        if not candidates or len(self.net.names) < 2:
            return
        account = self.rng.choice(candidates)
        inputs = bank.take(account, 1)
        dests = self.rng.sample([i for i in range(len(bank.keys)) if i != account], 2)
        a = self._build(account, inputs, dests[0], 0.3)
        b = self._build(account, inputs, dests[1], 0.6)
        if a is None or b is None:
            bank.forget([op for op, _ in inputs])
            return
        nodes = self.rng.sample(self.net.names, 2)
        subs = [Submission(tx.txid.hex(), node, round(self.now(), 3),
                           [(op.txid.hex(), op.index) for op, _ in inputs], double=True)
                for (tx, _), node in zip((a, b), nodes)]
        await asyncio.gather(self.submit(subs[0], a[0].encoded.hex()), self.submit(subs[1], b[0].encoded.hex()))
        self.submissions.extend(subs)
        if any(s.outcome != "unsent" for s in subs):
            self.double_pairs.append((subs[0].txid, subs[1].txid))
        ops = [op for op, _ in inputs]
        acked = [(s, built) for s, built in zip(subs, (a, b)) if s.outcome == "ack"]
        for s in subs:
            self.counts[s.outcome] += 1
            if s.outcome == "ack":
                self.acks[s.txid] = s
        if acked:
            for s, built in acked:
                bank.settle(ops, built[1])
        else:
            unknown = [(s, built) for s, built in zip(subs, (a, b)) if s.outcome == "unknown"]
            for s, built in unknown:
                bank.limbo[s.txid] = (s, ops, built[1], 0)
            if not unknown:
                if all(s.outcome == "unsent" for s in subs):
                    bank.give_back(account, inputs)
                    await asyncio.sleep(self.rng.uniform(0.1, 0.4))
                else:
                    bank.forget(ops)

    async def read_balance(self, min_height: int | None = None) -> None:
        assert self.http is not None
        node = self._node()
        account = self.rng.randrange(len(self.bank.keys))
        text = self.bank.texts[account]
        params = {"min_height": min_height} if min_height is not None else {}
        try:
            r = await self.http.get(self.net.url(node) + f"/v1/addresses/{text}/balance", params=params,
                                    timeout=READ_TIMEOUT)
        except (httpx.HTTPError, OSError):
            self.counts["read failed"] += 1
            return
        if r.status_code == 200:
            body = r.json()
            self.reads.append(Read(node, text, int(body["height"]), int(body["balance"]), round(self.now(), 3)))
            if min_height is not None and int(body["height"]) < min_height:
                self.ryw_violations.append({"node": node, "min_height": min_height, "height": body["height"]})
        elif r.status_code >= 500 and r.status_code != 503:
            self._server_error(node, "GET", "/v1/addresses/{a}/balance", r)
        else:
            self.counts["read refused"] += 1

    async def refresh(self, account: int) -> None:
        """Learn an account's unspent outputs from a random node (also a balance read: their sum at that height)."""
        assert self.http is not None
        node = self._node()
        text = self.bank.texts[account]
        try:
            r = await self.http.get(self.net.url(node) + f"/v1/addresses/{text}/utxos", params={"limit": 1000},
                                    timeout=READ_TIMEOUT)
        except (httpx.HTTPError, OSError):
            return
        if r.status_code != 200:
            if r.status_code >= 500 and r.status_code != 503:
                self._server_error(node, "GET", "/v1/addresses/{a}/utxos", r)
            return
        body = r.json()
        if body.get("next") is None:
            self.reads.append(Read(node, text, int(body["height"]), sum(int(u["amount"]) for u in body["utxos"]),
                                   round(self.now(), 3), source="utxos"))
        self.bank.refresh(account, body["utxos"])

    async def client(self, cid: int, deadline: float) -> None:
        last_ack_height = 0
        for _ in range(1_000_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            roll = self.rng.random()
            try:
                if roll < 0.25:
                    await self.read_balance(last_ack_height if last_ack_height and self.rng.random() < 0.5 else None)
                    await asyncio.sleep(self.rng.uniform(0.02, 0.1))
                elif roll < 0.28:
                    await self.double_spend()
                elif roll < 0.31:
                    await self.refresh(self.rng.randrange(len(self.bank.keys)))
                else:
                    before = len(self.acks)
                    await self.transfer()
                    if len(self.acks) > before:
                        last_ack_height = max(s.height or 0 for s in list(self.acks.values())[before:])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a workload bug must not end the drill silently
                self.counts[f"client error {type(exc).__name__}"] += 1
                self.out(f"!! client {cid}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)

    async def reader(self, deadline: float) -> None:
        """A client that only reads balances, about ten a second, half of them with ``min_height``."""
        for _ in range(1_000_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            acked = [s.height for s in list(self.acks.values())[-5:] if s.height]
            floor = max(acked) if acked and self.rng.random() < 0.5 else None
            with contextlib.suppress(Exception):
                await self.read_balance(floor)
            await asyncio.sleep(self.rng.uniform(0.05, 0.15))

    async def resolve_once(self, limit: int = 20) -> None:
        """Ask a node about transactions whose outcome is unknown."""
        assert self.http is not None
        now = self.now()
        for txid in list(self.bank.limbo)[:limit]:
            sub, inputs, outs, misses = self.bank.limbo[txid]
            if now - sub.t < 3:
                continue
            node = self._node()
            try:
                r = await self.http.get(self.net.url(node) + f"/v1/txs/{txid}", timeout=READ_TIMEOUT)
            except (httpx.HTTPError, OSError):
                continue
            if r.status_code == 200 and r.json().get("status") == "committed":
                del self.bank.limbo[txid]
                self.bank.settle(inputs, outs)
            elif r.status_code == 404:
                misses += 1
                if misses >= 3 and now - sub.t > 45:
                    del self.bank.limbo[txid]
                    self.bank.forget(inputs)
                else:
                    self.bank.limbo[txid] = (sub, inputs, outs, misses)
            elif r.status_code >= 500 and r.status_code != 503:
                self._server_error(node, "GET", "/v1/txs/{txid}", r)

    async def resolver(self, deadline: float) -> None:
        for _ in range(100_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            await asyncio.sleep(2)
            with contextlib.suppress(Exception):
                await self.resolve_once()

    async def run(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        tasks = [asyncio.create_task(self.client(i, deadline), name=f"client-{i}") for i in range(self.clients)]
        tasks.append(asyncio.create_task(self.resolver(deadline), name="resolver"))
        tasks.append(asyncio.create_task(self.reader(deadline), name="reader"))
        try:
            done, pending = await asyncio.wait(tasks, timeout=duration_s + COMMIT_WAIT_S + 15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self.stop.set()


# --------------------------------------------------------------------------- faults


class Nemesis:
    """Applies the planned faults in order and heals each one; prints each as it happens."""

    def __init__(self, net: DrillNetwork, plan: list[FaultStep], workload: Workload, out=print):
        self.net = net
        self.plan = plan
        self.workload = workload
        self.out = out
        self.events: list[dict] = []
        self.applied: Counter = Counter()
        self.evidence_seen_during_twin: list[dict] = []
        self.monitor = drill_faults.HeightMonitor(net, workload)
        self.clock_offsets: dict[str, int] = {}
        self.byzantine: set[str] = set()
        self.tamper_runs: list[dict] = []

    def event(self, what: str, text: str, **extra) -> None:
        t = self.workload.now()
        self.events.append({"t": round(t, 2), "event": what, "text": text, **extra})
        self.out(f"[{t:7.1f}s] {what:<9} {text}")
        if what in drill_faults.HEAL_EVENTS:
            self.monitor.heal(f"{what} {text}"[:120], t)

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 1.0))
            self.net.check_crashes()

    async def run(self) -> None:
        for step in self.plan:
            wait = step.at_s - self.workload.now()
            if wait > 0:
                await self.sleep(wait)
            await self.monitor.settle()  # the last heal's new height first (quick unless the chain stalls)
            if self.workload.stop.is_set():
                self.event("skip", f"{step.kind}: workload over")
                continue
            if await self.apply(step) is False:
                continue
            self.applied[step.kind if step.kind != "partition" else f"partition/{step.detail['shape']}"] += 1

    async def apply(self, step: FaultStep) -> bool | None:
        net, d = self.net, step.detail
        if step.kind in drill_faults.NEW_KINDS:
            return await drill_faults.apply(self, step)
        if step.kind == "kill":
            pids = await net.kill([d["node"]])
            self.event("kill", f"SIGKILL {d['node']} (pid {pids[0] if pids else '-'})")
            await self.sleep(step.duration_s)
            pid = net.start(d["node"])
            self.event("restart", f"{d['node']} (pid {pid}) after {step.duration_s:.1f}s down")
        elif step.kind == "killall":
            pids = await net.kill(list(net.names))
            self.event("killall", f"SIGKILL {len(pids)} validators (pids {' '.join(map(str, pids))})")
            await asyncio.sleep(step.duration_s)
            pids = [net.start(n) for n in net.names]
            self.event("restart", f"all validators (pids {' '.join(map(str, pids))}) after {step.duration_s:.1f}s")
        elif step.kind == "pause":
            pids = [net.pause(n) for n in d["nodes"]]
            self.event("pause", f"SIGSTOP {', '.join(d['nodes'])} (pids {' '.join(map(str, pids))})")
            await self.sleep(step.duration_s)
            for n in d["nodes"]:
                net.resume(n)
            self.event("resume", f"SIGCONT {', '.join(d['nodes'])} after {step.duration_s:.1f}s")
        elif step.kind == "partition":
            for a, b in d["cut"]:
                net.proxy.cut(a, b)
            self.event("partition", f"{d['shape']}: {d['label']} (cut {len(d['cut'])} pairs)")
            await self.sleep(step.duration_s)
            net.proxy.heal()
            self.event("heal", f"partition {d['shape']} after {step.duration_s:.1f}s")
        elif step.kind == "slow":
            net.proxy.set_slow(d["delay_ms"] / 1000, d["jitter_ms"] / 1000, d["loss"], d["reset"])
            self.event("slow", step.describe())
            await self.sleep(step.duration_s)
            net.proxy.heal()
            self.event("heal", f"slow links after {step.duration_s:.1f}s")
        elif step.kind == "twin":
            await self.twin(step)

    async def twin(self, step: FaultStep) -> None:
        net = self.net
        victim = step.detail["victim"]
        if TWIN_NAME not in net.specs:
            self.event("skip", "twin: no twin home")
            return
        victim_hex = net.validator_addresses[victim].hex()
        from_height = await self._height_now()
        pid = net.start(TWIN_NAME)
        self.event("twin", f"started twin of {victim} (pid {pid}) with {victim}'s key at height {from_height}")
        started = time.monotonic()
        found_at = None
        while time.monotonic() - started < step.duration_s:
            await self.sleep(2.0)
            records = [r for r in await self._evidence_now(victim_hex) if r["height"] >= from_height]
            if records and found_at is None:
                found_at = time.monotonic() - started
                self.evidence_seen_during_twin = records
                self.event("evidence", f"{len(records)} new record(s) against {victim} at heights "
                                       f"{sorted({r['height'] for r in records})[:5]} after {found_at:.1f}s")
            if found_at is not None and time.monotonic() - started >= min(step.duration_s, found_at + 5):
                break
        await net.terminate(TWIN_NAME)
        self.event("twin-stop", f"twin of {victim} stopped after {time.monotonic() - started:.1f}s")

    async def _height_now(self) -> int:
        http = self.workload.http
        assert http is not None
        best = 0
        for name in self.net.names:
            with contextlib.suppress(Exception):
                r = await http.get(self.net.url(name) + "/v1/status", timeout=2)
                best = max(best, int(r.json()["height"]))
        return best

    async def _evidence_now(self, victim_hex: str) -> list[dict]:
        http = self.workload.http
        assert http is not None
        records = []
        for name in self.net.names:
            try:
                r = await http.get(self.net.url(name) + "/v1/evidence", timeout=2)
                if r.status_code == 200:
                    records += [dict(e, seen_by=name) for e in r.json()["evidence"] if e["validator"] == victim_hex]
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                continue
        return records

    async def heal_all(self) -> None:
        """Undo everything: links, pauses, Byzantine processes, skewed clocks, dead validators, the twin."""
        net = self.net
        net.check_crashes()  # a validator that died on its own is reported, not silently restarted below
        net.proxy.heal()
        for name in net.names:
            if name in net.paused:
                net.resume(name)
        await drill_faults.heal(self)  # Byzantine processes and skewed clocks stop; restarted honest below
        for name in net.names:
            if not net.running(name):
                net.start(name)
        if TWIN_NAME in net.procs and net.running(TWIN_NAME):
            await net.terminate(TWIN_NAME)
        self.event("heal-all", "links healed, every validator running and resumed, twin stopped")


# --------------------------------------------------------------------------- checks


@dataclass
class Check:
    name: str
    value: str
    ok: bool | None
    """True pass, False violation, None information."""


class Checker:
    """Everything verified after the run, from the nodes' own answers and an independent replay."""

    def __init__(self, net: DrillNetwork, workload: Workload, nemesis: Nemesis, http: httpx.AsyncClient,
                 twin_enabled: bool, out=print):
        self.net = net
        self.workload = workload
        self.nemesis = nemesis
        self.http = http
        self.twin_enabled = twin_enabled
        self.out = out
        self.checks: list[Check] = []
        self.violations: list[str] = []
        self.details: dict = {}

    def add(self, name: str, value, ok: bool | None = None, violation: str | None = None) -> None:
        self.checks.append(Check(name, str(value), ok))
        if ok is False:
            self.violations.append(violation or f"{name}: {value}")

    async def get(self, node: str, path: str, params: dict | None = None, timeout: float = 10) -> httpx.Response:
        last: Exception | None = None
        for _ in range(3):
            try:
                return await self.http.get(self.net.url(node) + path, params=params, timeout=timeout)
            except (httpx.HTTPError, OSError) as exc:
                last = exc
                await asyncio.sleep(0.5)
        raise RuntimeError(f"{node} {path}: {last}")

    async def converge(self, timeout_s: float = 180) -> tuple[bool, int]:
        """Wait until every validator serves and all have passed the highest height seen at the start."""
        deadline = time.monotonic() + timeout_s
        target = None
        heights: dict[str, int] = {}
        while time.monotonic() < deadline:
            self.net.check_crashes()
            heights = {}
            for name in self.net.names:
                with contextlib.suppress(Exception):
                    r = await self.http.get(self.net.url(name) + "/v1/status", timeout=2)
                    if r.status_code == 200:
                        heights[name] = int(r.json()["height"])
            if len(heights) == len(self.net.names):
                if target is None:
                    target = max(heights.values()) + 1
                if min(heights.values()) >= target:
                    return True, min(heights.values())
            await asyncio.sleep(0.5)
        self.details["heights_at_timeout"] = heights
        return False, min(heights.values()) if heights else 0

    async def fetch_chain(self, node: str, top: int, with_txs: bool) -> list[dict]:
        blocks: list[dict] = []
        for start in range(1, top + 1, 100):
            end = min(top, start + 99)
            r = await self.get(node, "/v1/blocks", {"from": start, "to": end, "txs": str(with_txs).lower()}, 30)
            r.raise_for_status()
            blocks += r.json()["blocks"]
        return blocks

    async def liveness_probe(self) -> tuple[bool, str]:
        """After healing, a fresh transfer must commit."""
        wl = self.workload
        for attempt in range(6):
            for account in range(len(wl.bank.keys)):
                if not wl.bank.available[account]:
                    await wl.refresh(account)
            candidates = [i for i, pool in wl.bank.available.items() if pool]
            if not candidates:
                await asyncio.sleep(2)
                continue
            account = candidates[0]
            inputs = wl.bank.take(account, 1)
            built = wl._build(account, inputs, (account + 1) % len(wl.bank.keys), 0.5)
            if built is None:
                continue
            tx, outs = built
            node = self.net.names[attempt % len(self.net.names)]
            sub = Submission(tx.txid.hex(), node, round(wl.now(), 3), [(op.txid.hex(), op.index) for op, _ in inputs])
            wl.submissions.append(sub)
            await wl.submit(sub, tx.encoded.hex())
            wl._after(sub, account, inputs, outs)
            if sub.outcome == "ack":
                return True, f"committed at height {sub.height} via {node}"
            await asyncio.sleep(1)
        return False, "no transfer committed after healing"

    async def run(self) -> None:
        net, wl = self.net, self.workload
        ok, _ = await self.converge()
        self.add("nodes converged after heal", "yes" if ok else f"no: {self.details.get('heights_at_timeout')}", ok)
        live, text = await self.liveness_probe()
        self.add("transfer commits after heal", text, live)
        drill_faults.check_liveness(self)
        await self.converge(60)
        heights = {}
        for name in net.names:
            with contextlib.suppress(Exception):
                heights[name] = int((await self.get(name, "/v1/status")).json()["height"])
        top = min(heights.values()) if heights else 0
        self.details["final_heights"] = heights
        self.add("height checked (min over validators)", top)

        try:
            await self._check_all(top, heights)
        except Exception as exc:  # noqa: BLE001  (a check that cannot run is a failed check, not a crash)
            self.add("checks could not finish", f"{type(exc).__name__}: {exc}", False)

    async def _check_all(self, top: int, heights: dict[str, int]) -> None:
        net, wl = self.net, self.workload
        # 1. the same blocks and app hash everywhere
        chains = {}
        ref_name = next((n for n in net.names if n in heights), net.names[0])
        for name in net.names:
            if name in heights:
                chains[name] = await self.fetch_chain(name, top, with_txs=(name == ref_name))
        ref = chains.get(ref_name, [])
        disagreements = []
        for h in range(1, top + 1):
            seen = {(c[h - 1]["hash"], c[h - 1]["header"]["app_hash"]) for c in chains.values() if len(c) >= h}
            if len(seen) != 1:
                disagreements.append(h)
        self.add("block hash + app hash agreement", f"{len(chains)} nodes x {top} heights, "
                 f"{len(disagreements)} disagree", not disagreements and len(chains) == len(net.names),
                 f"nodes disagree at heights {disagreements[:10]}")

        # 2. replay from genesis: no double spend, fees, supply
        replay = self.replay(ref)
        self.add("outputs spent twice", len(replay["double_spends"]), not replay["double_spends"],
                 f"outputs spent twice: {replay['double_spends'][:5]}")
        self.add("inputs that never existed", len(replay["missing"]), not replay["missing"],
                 f"spends of unknown outputs: {replay['missing'][:5]}")
        self.add("transactions committed twice", len(replay["dup_txids"]), not replay["dup_txids"])
        self.add("transactions paying out more than in", len(replay["inflation"]), not replay["inflation"],
                 f"outputs above inputs: {replay['inflation'][:5]}")
        bad_supply_replay = [h for h, s in enumerate(replay["supply"]) if s != net.supply]
        self.add("replayed supply == genesis at every height", f"{top + 1 - len(bad_supply_replay)}/{top + 1}",
                 not bad_supply_replay, f"replayed supply off at heights {bad_supply_replay[:10]}")

        # 3. the nodes' own balances at every height: sum == supply, each == replay
        try:
            api_bad_supply, api_mismatch, queries = await self.check_api_balances(top, replay)
        except Exception as exc:  # noqa: BLE001
            self.add("served balances at every height", f"could not read: {type(exc).__name__}: {exc}", False)
        else:
            self.add("served balances sum to supply at every height",
                     f"{top + 1 - len(api_bad_supply)}/{top + 1} heights ({queries} queries)", not api_bad_supply,
                     f"served balances do not add up to the supply at heights {api_bad_supply[:10]}")
            self.add("served balances == replay", f"{len(api_mismatch)} mismatches", not api_mismatch,
                     f"served balance differs from replay: {api_mismatch[:5]}")

        # 4. acknowledged transactions
        lost, misplaced = [], []
        for txid, sub in wl.acks.items():
            where = replay["txs"].get(txid)
            if where is None:
                lost.append(txid)
            elif where[0] != sub.height or replay["hashes"][where[0] - 1] != sub.block_hash:
                misplaced.append({"txid": txid, "acked": [sub.height, sub.block_hash], "chain": where})
        unsent = sum(1 for s in wl.submissions if s.outcome == "unsent")
        self.add("transactions submitted", f"{len(wl.submissions) - unsent} (+{unsent} refused: node down)")
        self.add("acknowledged committed", len(wl.acks))
        self.add("acknowledged found in chain", f"{len(wl.acks) - len(lost)}/{len(wl.acks)}", not lost)
        self.add("lost acknowledged transactions", len(lost), not lost, f"acknowledged but not in the chain: {lost[:5]}")
        self.add("acknowledged at a different block", len(misplaced), not misplaced,
                 f"acknowledged at a block that is not in the chain: {misplaced[:3]}")
        unknown = [s for s in wl.submissions if s.outcome == "unknown"]
        late = sum(1 for s in unknown if s.txid in replay["txs"])
        self.add("unknown outcome (timeout/504)", f"{len(unknown)} (later committed {late}, "
                 f"never {len(unknown) - late})")
        rejected = Counter(s.code or str(s.status) for s in wl.submissions if s.outcome == "rejected")
        self.add("rejected", f"{sum(rejected.values())} " + (str(dict(rejected.most_common(4))) if rejected else ""))
        both = [p for p in wl.double_pairs if p[0] in replay["txs"] and p[1] in replay["txs"]]
        self.add("double-spend attempts: both committed", f"{len(both)} of {len(wl.double_pairs)}", not both)
        committed_by_workload = sum(1 for s in wl.submissions if s.txid in replay["txs"])
        self.add("workload transactions in chain", committed_by_workload)
        self.add("transactions in chain", len(replay["txs"]))

        # 5. reads
        unchecked = [r for r in wl.reads if r.height > top]
        wrong = [asdict(r) | {"chain": replay["balance_at"](r.address, r.height)} for r in wl.reads
                 if r.height <= top and replay["balance_at"](r.address, r.height) != r.balance]
        self.add("balance reads == chain state at reported height",
                 f"{len(wl.reads) - len(unchecked) - len(wrong)}/{len(wl.reads) - len(unchecked)}", not wrong,
                 f"reads that match no state of the chain: {wrong[:5]}")
        self.add("read-your-writes (min_height) violations", len(wl.ryw_violations), not wl.ryw_violations)

        # 6. evidence
        await self.check_evidence()

        # 7. server errors, crashes, logs
        self.add("HTTP 500s seen by clients", len(wl.server_errors), not wl.server_errors,
                 f"server errors: {wl.server_errors[:3]}")
        self.add("nodes that died on their own", len(net.unexpected_exits), not net.unexpected_exits,
                 f"unexpected exits: {[(e['node'], e['exit_code']) for e in net.unexpected_exits]}")
        critical = self.scan_logs()
        self.add("CRITICAL / internal-error log lines", len(critical), not critical, f"log: {critical[:3]}")
        self.details["replay_heights"] = top

        # 8. block times (BFT time under a skewed clock) and the tampering validator
        drill_faults.check_block_times(self, ref)
        drill_faults.check_tamper(self)

    def replay(self, blocks: list[dict]) -> dict:
        """Rebuild the UTXO set from genesis and the blocks; balances of every address at every height."""
        net = self.net
        utxos: dict[tuple[str, int], tuple[str, int]] = {}
        gtxid = genesis_txid(net.chain_id).hex()
        for n, alloc in enumerate(net.genesis.allocations):
            utxos[(gtxid, n)] = (encode_address(alloc.address), alloc.amount)
        balances: Counter = Counter()
        for addr, amount in utxos.values():
            balances[addr] += amount
        history: dict[str, list[tuple[int, int]]] = {a: [(0, b)] for a, b in balances.items()}
        spent: set[tuple[str, int]] = set()
        double_spends, missing, dup_txids, inflation = [], [], [], []
        txs: dict[str, tuple[int, int]] = {}
        supply = [sum(balances.values())]
        hashes = []

        def change(addr: str, delta: int, height: int) -> None:
            balances[addr] += delta
            hist = history.setdefault(addr, [(0, 0)])
            if hist[-1][0] == height:
                hist[-1] = (height, balances[addr])
            else:
                hist.append((height, balances[addr]))

        for h, block in enumerate(blocks, start=1):
            if block["height"] != h:
                raise RuntimeError(f"chain fetch out of order at {h}")
            hashes.append(block["hash"])
            fees = 0
            for index, tx in enumerate(block.get("txs", [])):
                txid = tx["txid"]
                if txid in txs:
                    dup_txids.append(txid)
                txs[txid] = (h, index)
                total_in = 0
                for i in tx["inputs"]:
                    key = (i["prev_txid"], i["prev_index"])
                    if key in spent:
                        double_spends.append({"outpoint": f"{key[0]}:{key[1]}", "height": h, "txid": txid})
                        continue
                    if key not in utxos:
                        missing.append({"outpoint": f"{key[0]}:{key[1]}", "height": h, "txid": txid})
                        continue
                    addr, amount = utxos.pop(key)
                    spent.add(key)
                    total_in += amount
                    change(addr, -amount, h)
                total_out = 0
                for n, o in enumerate(tx["outputs"]):
                    utxos[(txid, n)] = (o["address"], o["amount"])
                    total_out += o["amount"]
                    change(o["address"], o["amount"], h)
                if total_out > total_in:
                    inflation.append({"txid": txid, "height": h, "in": total_in, "out": total_out})
                else:
                    fees += total_in - total_out
            if fees:
                proposer = block["header"]["proposer"]
                utxos[(fee_outpoint(net.chain_id, h).txid.hex(), 0)] = (proposer, fees)
                change(proposer, fees, h)
            supply.append(sum(balances.values()))

        def balance_at(addr: str, height: int) -> int:
            value = 0
            for hh, bal in history.get(addr, []):
                if hh > height:
                    break
                value = bal
            return value

        return {"double_spends": double_spends, "missing": missing, "dup_txids": dup_txids, "txs": txs,
                "inflation": inflation,
                "supply": supply, "hashes": hashes, "balance_at": balance_at, "history": history}

    async def check_api_balances(self, top: int, replay: dict) -> tuple[list[int], list[dict], int]:
        """balance?height=h for every account and validator at every height, spread over the validators."""
        net = self.net
        tracked = [encode_address(a) for a in net.account_addresses] + \
                  [encode_address(a) for a in net.validator_addresses.values()]
        sem = asyncio.Semaphore(8)
        bad_supply: list[int] = []
        mismatch: list[dict] = []
        queries = 0

        async def one(node: str, addr: str, h: int) -> int:
            async with sem:
                r = await self.get(node, f"/v1/addresses/{addr}/balance", {"height": h})
            if r.status_code != 200:
                raise RuntimeError(f"{node} balance {addr}@{h}: {r.status_code} {r.text[:200]}")
            return int(r.json()["balance"])

        for start in range(0, top + 1, 25):
            heights = list(range(start, min(top, start + 24) + 1))
            jobs = [(h, addr, net.names[h % len(net.names)]) for h in heights for addr in tracked]
            values = await asyncio.gather(*(one(node, addr, h) for h, addr, node in jobs))
            queries += len(jobs)
            per_height: Counter = Counter()
            for (h, addr, node), value in zip(jobs, values):
                per_height[h] += value
                expected = replay["balance_at"](addr, h)
                if value != expected:
                    mismatch.append({"node": node, "address": addr, "height": h, "served": value,
                                     "replay": expected})
            bad_supply += [h for h in heights if per_height[h] != net.supply]
        return bad_supply, mismatch, queries

    async def check_evidence(self) -> None:
        from node.consensus.messages import Vote, vote_digest
        net = self.net
        keys = {v.address.hex(): v.public_key for v in net.genesis.validators}
        names = {v.address.hex(): v.name for v in net.genesis.validators}
        victim = net.twin_victim
        victim_hex = net.validator_addresses[victim].hex() if victim else None
        by_node: dict[str, int] = {}
        against: Counter = Counter()
        invalid = []
        for name in net.names:
            try:
                records = (await self.get(name, "/v1/evidence")).json()["evidence"]
            except Exception as exc:  # noqa: BLE001
                invalid.append(f"{name}: {exc}")
                continue
            by_node[name] = len(records)
            for rec in records:
                against[names.get(rec["validator"], rec["validator"])] += 1
                try:
                    a = Vote.decode(bytes.fromhex(rec["vote_a"]["encoded"]))
                    b = Vote.decode(bytes.fromhex(rec["vote_b"]["encoded"]))
                    same_slot = (a.vote_type, a.height, a.round, a.validator) == \
                                (b.vote_type, b.height, b.round, b.validator)
                    pk = keys[a.validator.hex()]
                    signed = all(verify_signature(pk, vote_digest(net.chain_id, v.vote_type, v.height, v.round,
                                                                  v.block_hash, v.time_ms), v.signature)
                                 for v in (a, b))
                    if not (same_slot and signed and a.block_hash != b.block_hash):
                        invalid.append(f"{name}: {rec['validator']} h={rec['height']} not a valid equivocation")
                except (KeyError, ValueError) as exc:
                    invalid.append(f"{name}: undecodable evidence {exc}")
        self.details["evidence_by_node"] = by_node
        self.details["evidence_against"] = dict(against)
        honest_accused = {v: c for v, c in against.items() if v != victim}
        twin_ran = self.nemesis.applied.get("twin", 0) > 0
        if self.twin_enabled and twin_ran:
            found = against.get(victim, 0)
            honest_nodes = [n for n in by_node if n != victim and by_node[n]]
            self.add(f"twin evidence against {victim}", f"{found} records; on {len(honest_nodes)} of "
                     f"{len(net.names) - 1} other validators", found > 0 and bool(honest_nodes),
                     f"the twin of {victim} ran but no other validator recorded evidence")
        elif self.twin_enabled:
            self.add("twin evidence", "twin did not run", False, "the twin was planned but never ran")
        self.add("evidence against honest validators", sum(honest_accused.values()) or 0, not honest_accused,
                 f"honest validators accused of equivocation: {honest_accused}")
        self.add("evidence records that fail verification", len(invalid), not invalid, f"bad evidence: {invalid[:3]}")

    def scan_logs(self) -> list[str]:
        found = []
        for name in list(self.net.names) + ([TWIN_NAME] if TWIN_NAME in self.net.specs else []):
            path = self.net.specs[name].home / "node.log"
            if not path.exists():
                continue
            with open(path, errors="replace") as handle:
                for line in handle:
                    if " CRITICAL " in line or "internal error" in line:
                        found.append(f"{name}: {line.strip()[:300]}")
        return found


# --------------------------------------------------------------------------- the drill


@dataclass
class DrillOptions:
    seed: int = 1
    duration_s: float = 60.0
    faults: tuple[str, ...] = FAULT_KINDS
    validators: int = 4
    accounts: int = 8
    outputs_per_account: int = 4
    clients: int = 4
    home: Path | None = None
    json_path: Path | None = None
    keep: bool = False


@dataclass
class DrillResult:
    ok: bool
    checks: list[Check]
    violations: list[str]
    report: dict


def format_table(result: DrillResult, opts: DrillOptions) -> str:
    """The verdict as a plain-text table (long values wrap onto continuation lines)."""
    import textwrap
    width = 64
    rows = [(c.name, textwrap.wrap(c.value, width) or [""], {True: "PASS", False: "FAIL", None: ""}[c.ok])
            for c in result.checks]
    w1 = max(len(r[0]) for r in rows)
    title = (f"drill verdict: seed {opts.seed}, {opts.duration_s:g}s, {opts.validators} validators, "
             f"faults {','.join(opts.faults) or 'none'}")
    rule = "-" * (w1 + width + 8)
    lines = [title, rule]
    for name, values, ok in rows:
        lines.append(f"{name:<{w1}}  {values[0]:<{width}}  {ok}".rstrip())
        lines += [f"{'':<{w1}}  {more}" for more in values[1:]]
    lines.append(rule)
    lines.append("VERDICT: " + ("PASS" if result.ok else f"FAIL ({len(result.violations)} violations)"))
    for v in result.violations:
        lines.append(f"  violation: {v[:600]}")
    return "\n".join(lines)


async def run_drill_async(opts: DrillOptions, out=print) -> DrillResult:
    unknown = [f for f in opts.faults if f not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if opts.validators < 1 or opts.accounts < 3 or opts.clients < 1:
        raise ValueError("need at least 1 validator, 3 accounts and 1 client")
    plan = plan_faults(opts.seed, opts.duration_s, list(opts.faults), opts.validators)
    twin_steps = [s for s in plan if s.kind == "twin"]
    victim = twin_steps[0].detail["victim"] if twin_steps else None
    base = opts.home
    assert base is not None
    net = DrillNetwork(base, opts.seed, opts.validators, opts.accounts, opts.outputs_per_account,
                       with_twin=bool(twin_steps), twin_victim=victim, out=out)
    out(f"drill seed={opts.seed} duration={opts.duration_s:g}s validators={opts.validators} "
        f"accounts={opts.accounts} clients={opts.clients} home={base}")
    out("plan:")
    for step in plan:
        out(f"  at {step.at_s:6.1f}s  {step.kind:<9} {step.describe()}")
    workload = Workload(net, opts.seed, opts.clients, out=out)
    nemesis = Nemesis(net, plan, workload, out=out)
    result: DrillResult | None = None
    try:
        await net.setup()
        for name in net.names:
            net.start(name)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)) as http:
            workload.http = http
            await wait_serving(net, http, 60)
            workload.t0 = time.monotonic()
            nemesis.monitor.start()
            nemesis_task = asyncio.create_task(nemesis.run(), name="nemesis")
            progress_task = asyncio.create_task(progress(workload, net, http, out), name="progress")
            try:
                await workload.run(opts.duration_s)
                try:
                    await asyncio.wait_for(asyncio.shield(nemesis_task), 60)
                except asyncio.TimeoutError:
                    nemesis_task.cancel()
            finally:
                for task in (nemesis_task, progress_task):
                    task.cancel()
                await asyncio.gather(nemesis_task, progress_task, return_exceptions=True)
                await nemesis.heal_all()
                await nemesis.monitor.settle()
                await nemesis.monitor.stop()
            checker = Checker(net, workload, nemesis, http, twin_enabled="twin" in opts.faults and bool(twin_steps),
                              out=out)
            out("checking ...")
            await checker.run()
            applied = ", ".join(f"{k} x{v}" for k, v in sorted(nemesis.applied.items())) or "none"
            checker.checks.insert(0, Check("faults applied", applied, None))
            missing = [k for k in opts.faults if not any(a.split("/")[0] == k for a in nemesis.applied)]
            if missing:
                checker.checks.insert(1, Check("faults planned but not applied", ",".join(missing), None))
            report = {
                "seed": opts.seed, "duration_s": opts.duration_s, "validators": opts.validators,
                "faults": list(opts.faults), "chain_id": net.chain_id, "home": str(base),
                "plan": [asdict(s) for s in plan], "events": nemesis.events,
                "checks": [asdict(c) for c in checker.checks], "violations": checker.violations,
                "ok": not checker.violations, "details": checker.details,
                "counts": dict(workload.counts),
                "acks": len(workload.acks), "submissions": len(workload.submissions), "reads": len(workload.reads),
                "server_errors": workload.server_errors, "unexpected_exits": net.unexpected_exits,
                "liveness": nemesis.monitor.report(),
                "proxy": {k: v for k, v in net.proxy.stats().items() if v["connections"]},
            }
            result = DrillResult(not checker.violations, checker.checks, checker.violations, report)
    finally:
        net.cleanup()
        await net.proxy.close()
    return result


async def wait_serving(net: DrillNetwork, http: httpx.AsyncClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok = 0
        for name in net.names:
            with contextlib.suppress(Exception):
                r = await http.get(net.url(name) + "/v1/status", timeout=1)
                ok += r.status_code == 200 and r.json()["height"] >= 1
        if ok == len(net.names):
            return
        net.check_crashes()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"validators not serving a first block after {timeout_s}s:\n" +
                       net.log_tail(net.names[0]))


async def progress(workload: Workload, net: DrillNetwork, http: httpx.AsyncClient, out) -> None:
    for _ in range(100_000):
        await asyncio.sleep(15)
        heights = []
        for name in net.names:
            try:
                r = await http.get(net.url(name) + "/v1/status", timeout=1)
                heights.append(str(r.json()["height"]))
            except Exception:  # noqa: BLE001
                heights.append("-")
        c = workload.counts
        out(f"[{workload.now():7.1f}s] progress  acked={len(workload.acks)} unknown={c['unknown']} "
            f"rejected={c['rejected']} unsent={c['unsent']} reads={len(workload.reads)} heights={'/'.join(heights)}")


def run_drill_sync(opts: DrillOptions, out=print) -> DrillResult:
    """Run a drill in a temporary home unless ``opts.home`` is given; keep the home on failure."""
    made = opts.home is None
    if made:
        opts.home = Path(tempfile.mkdtemp(prefix=f"ledger-drill-{opts.seed}-"))
    else:
        opts.home.mkdir(parents=True, exist_ok=True)
    result = None
    try:
        result = asyncio.run(run_drill_async(opts, out))
        return result
    finally:
        if result is not None and opts.json_path is not None:
            Path(opts.json_path).write_text(json.dumps(result.report, indent=2, default=str))
        if made and result is not None and result.ok and not opts.keep:
            shutil.rmtree(opts.home, ignore_errors=True)
        elif opts.home is not None:
            out(f"drill home kept at {opts.home}")


# --------------------------------------------------------------------------- command line


def parse_faults(text: str) -> tuple[str, ...]:
    if text.strip() in ("all", ""):
        return FAULT_KINDS if text.strip() == "all" else ()
    items = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [f for f in items if f not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
    return items


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="fault schedule and workload seed (default 1)")
    parser.add_argument("--duration", type=float, default=60.0, help="workload seconds (default 60)")
    parser.add_argument("--faults", type=parse_faults, default=FAULT_KINDS,
                        help=f"comma-separated subset of {','.join(FAULT_KINDS)}, 'all' (default) or ''. "
                             "kill/killall: SIGKILL one/all validators; pause: SIGSTOP; partition: isolate, "
                             "split or ring; slow: slow, lossy links; twin: a second process with a validator's "
                             "key; lag: a paused validator falls behind while another goes down, then must "
                             "catch up with 3 of 4 up; clock: one validator's clock off by minutes to years; "
                             "tamper: a Byzantine validator sends tampered blocks while a node lags behind it")
    parser.add_argument("--validators", type=int, default=4, help="number of validators (default 4)")
    parser.add_argument("--accounts", type=int, default=8, help="bank accounts (default 8)")
    parser.add_argument("--outputs-per-account", dest="outputs_per_account", type=int, default=4,
                        help="genesis outputs per account (default 4)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--home", type=Path, help="directory for the drill's node homes (default: a temp dir, "
                                                  "removed after a passing drill)")
    parser.add_argument("--json", dest="json_path", type=Path, help="write the full report as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp home even when the drill passes")


def run_drill(args: argparse.Namespace) -> int:
    opts = DrillOptions(seed=args.seed, duration_s=args.duration, faults=tuple(args.faults),
                        validators=args.validators, accounts=args.accounts,
                        outputs_per_account=args.outputs_per_account, clients=args.clients, home=args.home,
                        json_path=args.json_path, keep=args.keep)

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        result = run_drill_sync(opts, out)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result, opts), flush=True)
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-devnet drill", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_drill_arguments(parser)
    return run_drill(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
