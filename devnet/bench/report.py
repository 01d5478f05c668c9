"""How the bench shows a run: the live view, one line per ramp step, the result table and the plot.

The plot needs matplotlib, an optional extra (``pip install '.[bench]'``);
it is imported only when ``--plot`` asks for a plot.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from devnet.bench.measure import percentile, recent
from devnet.bench.options import BenchError

if TYPE_CHECKING:
    from devnet.bench.load import Bench

# --------------------------------------------------------------------------- while it runs


def render(bench: Bench):
    """The live view: the current phase, and every node's CPU and memory."""
    from rich.console import Group
    from rich.table import Table

    tps, p50 = recent(bench)
    sent, committed = bench.sent_txs, bench.committed_txs
    phase = bench.phase
    table = Table(title="ledger-devnet bench", expand=False)
    for col in ("phase", "offer/s", "elapsed", "sent", "committed", "in flight", "commit/s (5s)",
                "p50 (5s)", "height", "idle slots"):
        table.add_column(col, justify="right")
    elapsed = time.monotonic() - phase.start if phase else 0.0
    table.add_row(phase.name if phase else "-", f"{phase.rate:.0f}" if phase else "-",
                  f"{elapsed:.1f}s", str(sent), str(committed), str(sent - committed),
                  f"{tps:.0f}", f"{p50:.2f}s" if p50 is not None else "-", str(bench.next_height - 1),
                  str(bench.workload.idle_slots()))
    nodes = Table(expand=False)
    for col in ("node", "CPU %", "RSS MB", "peak RSS MB"):
        nodes.add_column(col, justify="right")
    for spec in bench.specs:
        s = bench.samples[spec.name]
        if len(s) >= 2:
            (t1, a), (t2, b) = s[-2], s[-1]
            cpu = 100 * (b.cpu_s - a.cpu_s) / max(t2 - t1, 1e-3)
            nodes.add_row(spec.name, f"{cpu:.0f}", f"{b.rss_mb:.0f}", f"{b.hwm_mb:.0f}")
        else:
            nodes.add_row(spec.name, "-", "-", "-")
    return Group(table, nodes)


async def live(bench: Bench) -> None:
    """Redraw the live view twice a second until the run stops (nothing with ``--quiet``)."""
    if bench.opts.quiet or bench.console is None:
        return
    from rich.live import Live

    with Live(render(bench), console=bench.console, refresh_per_second=2, transient=True) as view:
        while not bench.stop_tracking:
            await asyncio.sleep(0.5)
            view.update(render(bench))


def describe_step(v: dict) -> str:
    return (f"ramp {v['rate']:.0f} tx/s: committed {v['committed_tps']:.0f}/s, p50 {fmt_s(v['p50_s'])}, "
            f"p90 {fmt_s(v['p90_s'])}, backlog {v['backlog']}: {'sustained' if v['sustained'] else 'NOT sustained'}")


def fmt_s(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "-"


# --------------------------------------------------------------------------- afterwards


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


def load_pyplot():
    """matplotlib's pyplot on the file-only backend; a clear error when the ``bench`` extra is missing."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise BenchError("--plot needs matplotlib, which is not installed: pip install 'ledger-node[bench]' "
                         "(or, in a clone, pip install -e '.[bench]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plot(bench: Bench, path: Path) -> None:
    """Offered and committed transactions per second, and p50/p99 latency by send second, as a PNG."""
    plt = load_pyplot()
    t0 = bench.t0
    sends = [(r.submit_t, r.commit_t) for r in bench.workload.records.values() if r.submit_t is not None]
    end = max([b.seen_t for b in bench.blocks] + [t0 + 1]) - t0
    bins = int(math.ceil(end)) + 1
    offered = [0] * bins
    committed = [0] * bins
    lat_bins: list[list[float]] = [[] for _ in range(bins)]
    for submit_t, commit_t in sends:
        i = int(submit_t - t0)
        if 0 <= i < bins:
            offered[i] += 1
            if commit_t is not None:
                lat_bins[i].append(commit_t - submit_t)
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

