"""The measured window minute by minute: what a long run did in each of its minutes.

A whole run's p50 hides when it went wrong: an hour whose first twenty
minutes held 0.1 s and whose last forty drifted to 0.9 s has the same
summary as one that was slow throughout.  ``minute_table`` gives, for each
whole minute of the measured window, the transactions sent in it and their
latency, the blocks seen in it and the node CPU spent in it (all nodes), so
a drift shows where it starts and whether CPU per transaction grew with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devnet.bench.measure import NodeSample, percentile

if TYPE_CHECKING:
    from devnet.bench.load import Bench


@dataclass(frozen=True)
class Minute:
    """One whole minute of the measured window."""

    minute: int
    """1 for the window's first minute."""
    sent: int
    """Transactions first sent in this minute."""
    p50_s: float | None
    """Median latency (send to commit seen) of those committed; None if none was."""
    p99_s: float | None
    """99th percentile of the same."""
    committed_tps: float
    """Transactions in the blocks seen in this minute, per second."""
    blocks_per_s: float
    """Blocks seen in this minute, per second."""
    node_cpu_ms_per_tx: float | None
    """All nodes' CPU in this minute over the transactions committed in it (None without samples)."""

    def as_dict(self) -> dict:
        return {"minute": self.minute, "sent": self.sent, "p50_s": _round(self.p50_s), "p99_s": _round(self.p99_s),
                "committed_tps": round(self.committed_tps, 1), "blocks_per_s": round(self.blocks_per_s, 2),
                "node_cpu_ms_per_tx": _round(self.node_cpu_ms_per_tx)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def cpu_at(samples: Sequence[tuple[float, NodeSample]], t: float) -> float | None:
    """A node's CPU seconds at the first sample at or after ``t`` (None if there is none)."""
    for when, sample in samples:
        if when >= t:
            return sample.cpu_s
    return None


def minute_table(t_start: float, t_end: float, sends: Iterable[tuple[float, float | None]],
                 blocks: Iterable[tuple[float, int]],
                 node_samples: dict[str, list[tuple[float, NodeSample]]]) -> list[Minute]:
    """Each minute from ``t_start`` to ``t_end`` (a last part minute too, if it lasts at least 30 s; its rates
    are over its length): ``sends`` are (send time, latency or None), ``blocks`` (time seen, transactions),
    ``node_samples`` each node's (time, sample) in time order."""
    spans = []
    begin = t_start
    while t_end - begin >= 30:
        spans.append((begin, min(begin + 60, t_end)))
        begin += 60
    latencies: list[list[float]] = [[] for _ in spans]
    sent = [0] * len(spans)
    for t, latency in sends:
        m = int((t - t_start) // 60)
        if 0 <= m < len(spans) and t < t_end:
            sent[m] += 1
            if latency is not None:
                latencies[m].append(latency)
    txs, heights = [0] * len(spans), [0] * len(spans)
    for t, count in blocks:
        m = int((t - t_start) // 60)
        if 0 <= m < len(spans) and t < t_end:
            txs[m] += count
            heights[m] += 1
    out = []
    for m, (begin, end) in enumerate(spans):
        lat = sorted(latencies[m])
        cpu: float | None = 0.0
        for samples in node_samples.values():
            before, after = cpu_at(samples, begin), cpu_at(samples, end)
            if before is None or after is None or cpu is None:
                cpu = None
                break
            cpu += after - before
        seconds = end - begin
        out.append(Minute(m + 1, sent[m], percentile(lat, 0.5), percentile(lat, 0.99), txs[m] / seconds,
                          heights[m] / seconds, 1000 * cpu / txs[m] if cpu is not None and txs[m] else None))
    return out


def minutes_of(bench: Bench) -> list[dict]:
    """``minute_table`` of a finished run's measured window."""
    sends = [(r.submit_t, r.commit_t - r.submit_t if r.commit_t is not None else None)
             for r in bench.workload.records.values() if r.phase == "measure" and r.submit_t is not None]
    blocks = [(b.seen_t, b.txs) for b in bench.blocks]
    return [m.as_dict() for m in minute_table(bench.measure_start, bench.measure_end, sends, blocks,
                                              bench.samples)]
