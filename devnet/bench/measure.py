"""What the bench measures: the machine's ceiling, the node processes, and the verdicts and summary of a run.

The ceiling is single-core signature verifications per second with the
node's own verifier times the cores, over the validators (each validator
checks every signature once, and all share these cores).
"""

from __future__ import annotations

import collections
import functools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devnet.bench.options import BenchError, Options
from node.crypto import SigningKey, generate_private_key, verify_signature

if TYPE_CHECKING:
    from devnet.bench.load import Bench

# --------------------------------------------------------------------------- the machine's ceiling


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Signature verifications per second on one core, with the node's verifier."""
    samples = []
    for _ in range(32):
        key = SigningKey(generate_private_key())
        digest = os.urandom(32)
        samples.append((key.public_key, digest, key.sign(digest)))
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


# --------------------------------------------------------------------------- node processes


@dataclass
class NodeSample:
    cpu_s: float
    rss_mb: float
    hwm_mb: float
    anon_mb: float = 0.0
    """The anonymous part of RSS (the heap; the rest is file pages, e.g. LevelDB's memory-mapped tables)."""
    store_mb: float | None = None
    """Bytes of the node's store directory (``HOME/data``), in MB."""
    memory: dict[str, float] | None = None
    """What holds the node's memory, from its ``/metrics`` (``memory_parts``), on the samples that scraped it."""


def proc_sample(pid: int | None) -> NodeSample | None:
    """CPU seconds (user+system), RSS and peak RSS of a process, from /proc."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields_ = handle.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields_[11]) + int(fields_[12])) / ticks
        rss = hwm = anon = 0.0
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 1024
        return NodeSample(cpu, rss, hwm, anon)
    except (OSError, ValueError, IndexError):
        return None


MEMORY_METRICS = {
    ("ledger_heap_bytes", "in_use"): "heap_in_use_mb",
    ("ledger_heap_bytes", "free"): "heap_free_mb",
    ("ledger_store_memory_bytes", None): "leveldb_mb",
    ("ledger_python_heap_bytes", "arenas"): "python_arenas_mb",
    ("ledger_python_heap_bytes", "in_use"): "python_in_use_mb",
    ("ledger_resident_bytes", "anon"): "anon_mb",
}
"""The ``/metrics`` samples ``memory_parts`` reads, and the names it gives them (bytes become MB)."""
_MEMORY_NAMES = tuple(sorted({name for name, _label in MEMORY_METRICS}))


def memory_parts(metrics_text: str) -> dict[str, float]:
    """A node's memory by part (``MEMORY_METRICS``) from its ``/metrics`` text; the parts it does not report
    are left out."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(_MEMORY_NAMES):
            continue
        name_labels, _, value = line.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        label = labels.split('"')[1] if '"' in labels else None
        part = MEMORY_METRICS.get((name, label))
        if part is not None:
            try:
                number = float(value)
            except ValueError:
                continue
            out[part] = round(number / 1e6, 1)
    return out


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# --------------------------------------------------------------------------- blocks, phases, latencies


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



# --------------------------------------------------------------------------- verdicts


RECENT_S = 5.0
"""The live view's window: commits per second and p50 latency over this many seconds."""


def recent(bench: Bench, window: float = RECENT_S) -> tuple[float, float | None]:
    """Committed transactions per second and p50 latency over the last ``window`` seconds (at most the
    bench's ``RECENT_S``).  It reads only that window's commits and blocks: the live view calls it twice a
    second, and a walk over every record (millions in a long run) would stall the client that measures."""
    now = time.monotonic()
    commits = bench.recent_commits
    while commits and commits[0][0] < now - max(window, RECENT_S):
        commits.popleft()
    txs = 0
    for block in reversed(bench.blocks):
        if block.seen_t < now - window:
            break
        txs += block.txs
    lat = sorted(latency for seen, latency in commits if seen >= now - window)
    span = min(window, max(now - bench.t0, 1e-3))
    return txs / span, percentile(lat, 0.5)


def step_verdict(bench: Bench, phase: Phase, now: float) -> dict:
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
    target = bench.opts.target_p50
    lat = []
    backlog = rejected = 0
    for r in bench.workload.records.values():
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
    committed = sum(b.txs for b in bench.blocks if window_start <= b.seen_t <= phase.end)
    commit_rate = committed / max(phase.end - window_start, 1e-3)
    p50, p90 = percentile(lat, 0.5), percentile(lat, 0.9)
    ok = (p50 is not None and p50 <= 0.5 * target and p90 is not None and p90 <= 1.5 * target
          and backlog <= 1.5 * target * phase.rate and rejected == 0
          and phase.starved <= 0.02 * phase.rate * seconds)
    return {"phase": phase.name, "rate": phase.rate, "offered_tps": round(phase.offered / seconds, 1),
            "committed_tps": round(commit_rate, 1), "p50_s": p50, "p90_s": p90, "backlog": backlog,
            "starved": phase.starved, "rejected": rejected, "sustained": ok}


def measure_verdict(bench: Bench) -> dict:
    """Did the measured phase hold: p50 and p99 within target, commits keeping up with the offer?"""
    window = max(bench.measure_end - bench.measure_start, 1e-3)
    lat = sorted(r.commit_t - r.submit_t for r in bench.workload.records.values()
                 if r.phase == "measure" and r.commit_t is not None and r.submit_t is not None)
    committed = sum(b.txs for b in bench.blocks if bench.measure_start <= b.seen_t <= bench.measure_end)
    offered = sum(p.offered for p in bench.phases if p.name == "measure")
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    target = bench.opts.target_p50
    ok = (p50 is not None and p50 <= target and p99 is not None and p99 <= bench.opts.target_p99
          and committed >= 0.9 * offered)
    return {"rate": bench.chosen_rate, "offered_tps": round(offered / window, 1),
            "committed_tps": round(committed / window, 1), "p50_s": p50, "p99_s": p99, "sustained": ok}


# --------------------------------------------------------------------------- the result


def stage_cpu_per_tx(start: dict[str, dict[str, float]], end: dict[str, dict[str, float]], committed: int,
                     total_ms: float | None) -> dict[str, float] | None:
    """CPU ms per committed transaction by stage, summed over the nodes (each node's ``cpu_stages_s`` in
    ``GET /v1/status`` at the start and end of the measured window); ``other`` is the rest of the total."""
    if not committed or not start or not end:
        return None
    out: dict[str, float] = {}
    for name, before in start.items():
        after = end.get(name)
        if after is None:
            return None
        for stage, seconds in after.items():
            out[stage] = out.get(stage, 0.0) + max(0.0, seconds - before.get(stage, 0.0))
    per_tx = {stage: round(1000 * seconds / committed, 4) for stage, seconds in out.items()}
    if total_ms is not None:
        per_tx["other"] = round(max(0.0, total_ms - sum(per_tx.values())), 4)
    return per_tx


def rss_by_minute(bench: Bench, t_start: float, anon: bool = False) -> dict[str, list[float]]:
    """Each node's RSS (MB; with ``anon`` its anonymous part) at the end of every whole minute since the
    measured window began."""
    return by_minute(bench, t_start, lambda s: s.anon_mb if anon else s.rss_mb)


def store_by_minute(bench: Bench, t_start: float) -> dict[str, list[float]]:
    """Each node's store size (MB of ``HOME/data``) at the end of every whole minute since the measured window
    began."""
    return by_minute(bench, t_start, lambda s: s.store_mb)


def memory_by_minute(bench: Bench, t_start: float) -> dict[str, dict[str, list[float]]]:
    """Each node's memory by part (``MEMORY_METRICS``) at the end of every whole minute since the measured window
    began."""
    out: dict[str, dict[str, list[float]]] = {}
    for part in MEMORY_METRICS.values():
        for name, series in by_minute(bench, t_start, functools.partial(_memory_part, part)).items():
            out.setdefault(name, {})[part] = series
    return out


def _memory_part(part: str, sample: NodeSample) -> float | None:
    return (sample.memory or {}).get(part)


def by_minute(bench: Bench, t_start: float, value: Callable[[NodeSample], float | None]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, samples in bench.samples.items():
        series: list[float] = []
        minute = 1
        for t, sample in samples:
            v = value(sample)
            if t >= t_start + 60 * minute and v is not None:
                series.append(round(v, 1))
                minute += 1
        out[name] = series
    return out


def summarize(bench: Bench, opts: Options, verify_per_s: float, cores: int, extra: dict) -> dict:
    from devnet.bench.minutes import minutes_of  # it builds on this module's percentile and samples

    records = list(bench.workload.records.values())
    t_start, t_end = bench.measure_start, bench.measure_end
    window = max(t_end - t_start, 1e-3)
    measured = [r for r in records if r.phase == "measure" and r.attempts]
    lat = sorted(r.commit_t - r.submit_t for r in measured if r.commit_t is not None and r.submit_t is not None)
    # split each latency at the block's proposal time (header time, the proposer's clock = ours on loopback)
    proposed_at = {b.height: b.time_ms / 1000 - bench.wall_offset for b in bench.blocks}
    to_proposal = sorted(proposed_at[r.height] - r.submit_t for r in measured
                         if r.commit_t is not None and r.submit_t is not None and r.height in proposed_at)
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
    peaks: list[float] = []
    utils: list[float] = []
    for spec in bench.specs:
        s = bench.samples.get(spec.name, [])
        in_window = [x for x in s if t_start <= x[0] <= t_end]
        cpu_window = (in_window[-1][1].cpu_s - in_window[0][1].cpu_s) if len(in_window) >= 2 else None
        span = (in_window[-1][0] - in_window[0][0]) if len(in_window) >= 2 else None
        util = round(cpu_window / span, 3) if cpu_window is not None and span else None
        peak = round(max(x[1].hwm_mb for x in s), 1) if s else None
        if util is not None:
            utils.append(util)
        if peak is not None:
            peaks.append(peak)
        nodes.append({
            "name": spec.name,
            "pid": bench.pids.get(spec.name),
            "cpu_s_total": round(s[-1][1].cpu_s, 2) if s else None,
            "cpu_s_measured": round(cpu_window, 2) if cpu_window is not None else None,
            "cpu_util_measured": util,
            "rss_mb": round(s[-1][1].rss_mb, 1) if s else None,
            "rss_peak_mb": peak,
        })
    cpu_ms_per_tx = (1000 * sum(utils) * window / committed_in_window
                     if committed_in_window and len(utils) == len(nodes) else None)
    stages = stage_cpu_per_tx(bench.stages_start, bench.stages_end, committed_in_window, cpu_ms_per_tx)
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
        "node_cpu_ms_per_tx_by_stage": stages,
        "node_rss_mb_by_minute": rss_by_minute(bench, t_start),
        "node_rss_anon_mb_by_minute": rss_by_minute(bench, t_start, anon=True),
        "node_store_mb_by_minute": store_by_minute(bench, t_start),
        "node_memory_by_minute": memory_by_minute(bench, t_start),
        "by_minute": minutes_of(bench),
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
