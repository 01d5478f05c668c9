"""``ledger-devnet bench``: the command runs end to end on a short, low-rate load,
and its pieces (genesis writer, ramp, accounting helpers) do what they say."""

from __future__ import annotations

import json
import os
import random

import pytest

from devnet import bench
from devnet.cluster import write_genesis_json
from genesis.build import make_genesis
from genesis.document import genesis_hash, load_genesis


def test_fast_genesis_file_loads_back_to_the_same_genesis(tmp_path):
    rng = random.Random(1)
    addresses = [rng.randbytes(20) for _ in range(5)]
    genesis, _keys = make_genesis("bench", 3, [(addresses[i % 5], 1000 + i) for i in range(50)],
                                  bench.bench_params())
    path = tmp_path / "genesis.json"
    write_genesis_json(genesis, path)
    loaded = load_genesis(path)
    assert loaded == genesis
    assert genesis_hash(loaded) == genesis_hash(genesis)


def test_ramp_and_budget():
    opts = bench.Options(max=True, start_rate=100, rate_cap=300, factor=1.5, step=2, warmup=1, duration=4)
    assert opts.ramp_rates() == [100, 150, 225, 300]
    first, whole = bench.transfer_budget(opts)
    assert first >= (100 + 150 + 225 + 300 + 300) * 2
    assert whole >= first + 300 * 5
    fixed = bench.Options(rate=50, warmup=1, duration=3)
    assert bench.transfer_budget(fixed)[0] >= 200


def test_percentile_and_proc_sample():
    assert bench.percentile([], 0.5) is None
    assert bench.percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert bench.percentile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    sample = bench.proc_sample(os.getpid())
    assert sample is not None and sample.cpu_s > 0 and sample.hwm_mb >= sample.rss_mb > 0


def test_by_minute_series_take_the_first_sample_after_each_minute():
    from types import SimpleNamespace
    from typing import Any

    from devnet.bench.measure import NodeSample, rss_by_minute, store_by_minute

    samples = [(t, NodeSample(cpu_s=t, rss_mb=100 + t, hwm_mb=200, anon_mb=50 + t,
                              store_mb=None if t == 120 else 10 + t)) for t in range(0, 190, 30)]
    fake: Any = SimpleNamespace(samples={"validator-0": samples})
    # minutes end at 60, 120, 180 after a start at 0; the store had no reading at 120, so 150 stands for it
    assert rss_by_minute(fake, 0.0) == {"validator-0": [160.0, 220.0, 280.0]}
    assert rss_by_minute(fake, 0.0, anon=True) == {"validator-0": [110.0, 170.0, 230.0]}
    assert store_by_minute(fake, 0.0) == {"validator-0": [70.0, 160.0, 190.0]}


def test_the_live_views_figures_read_only_the_last_seconds():
    """The live view redraws twice a second: its commits per second and p50 come from the last 5 s of commits
    and blocks, never from a walk over every record (millions in an hour-long run stalled the client that
    measures latency by a third of a second each time)."""
    import collections
    import time
    from types import SimpleNamespace
    from typing import Any

    from devnet.bench.measure import BlockSeen, recent

    class Untouchable:
        def values(self):
            raise AssertionError("the live view walked every record")

    now = time.monotonic()
    commits = collections.deque([(now - 30, 9.0), (now - 4, 0.2), (now - 3, 0.4), (now - 1, 0.3)])
    blocks = [BlockSeen(1, now - 30, 500, 0), BlockSeen(2, now - 4, 100, 0), BlockSeen(3, now - 1, 200, 0)]
    fake: Any = SimpleNamespace(recent_commits=commits, blocks=blocks, t0=now - 60,
                                workload=SimpleNamespace(records=Untouchable()))
    tps, p50 = recent(fake)
    assert tps == 300 / 5 and p50 == 0.3
    assert list(commits) == [(now - 4, 0.2), (now - 3, 0.4), (now - 1, 0.3)]  # what fell out of the window is gone


def test_workload_chains_spend_the_previous_change():
    signers = [bench.Signer(bytes([i + 1]) * 32) for i in range(2)]
    from node.ledger.state import genesis_outpoint

    w = bench.Workload("bench", signers, nodes=2)
    for i in range(4):
        w.add_slot(i % 2, genesis_outpoint("bench", i), bench.slot_amount(10))
    assert w.presign(12) >= 12
    first = w.take(0, 10)
    assert [r.slot for r in first] == [0, 2]  # node 0 owns the even slots
    assert w.take(0, 10) == []  # both busy until their transfers commit
    w.release(first[0], committed=True)
    nxt = w.take(0, 10)
    assert len(nxt) == 1 and nxt[0].slot == 0 and nxt[0] is not first[0]
    from node.types.transaction import Transaction

    child = Transaction.decode(bytes.fromhex(nxt[0].hex))
    assert child.inputs[0].prev.txid.hex() == first[0].txid and child.inputs[0].prev.index == 1


def test_matplotlib_is_only_the_bench_plots_extra(tmp_path, monkeypatch, capsys):
    """The node, the devnet tools and the bench import without matplotlib; --plot without it says what to install,
    before anything runs."""
    import subprocess
    import sys

    code = ("import sys; import node.cli, devnet.cli, devnet.bench, devnet.drill, devnet.cluster; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert bench.main(["--plot", str(tmp_path / "p.png"), "--home", str(tmp_path / "net"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "[bench]" in err, err
    assert not (tmp_path / "net").exists()


@pytest.mark.processes
def test_bench_short_run_commits_everything(tmp_path):
    out = tmp_path / "bench.json"
    plot = tmp_path / "bench.png"
    code = bench.main(["--validators", "4", "--duration", "3", "--warmup", "1", "--rate", "50",
                       "--accounts", "8", "--utxos", "100", "--json", str(out), "--plot", str(plot),
                       "--home", str(tmp_path / "net"), "--quiet", "--verify-seconds", "0.2"])
    result = json.loads(out.read_text())
    assert code == 0, result
    for key in ("committed_tps", "offered_tps", "latency_p50_s", "latency_p90_s", "latency_p99_s", "blocks",
                "txs_per_block", "node_rss_mb", "ceiling_tps", "ratio"):
        assert result[key] is not None, key
    assert result["ok"] and result["app_hash_consistent"]
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["submitted"] > 100
    assert result["committed"] + result["rejected"] == result["submitted"]
    assert result["committed_tps"] > 0 and result["blocks"] > 0
    assert 0 < result["latency_p50_s"] <= result["latency_p99_s"]
    assert result["ceiling_tps"] > 0 and result["ratio"] > 0
    assert len(result["nodes"]) == 4 and all(n["rss_peak_mb"] > 0 for n in result["nodes"])
    assert plot.stat().st_size > 10_000
    # every node process was stopped
    for name in ("validator-0", "validator-1", "validator-2", "validator-3"):
        pid = int((tmp_path / "net" / name / "node.pid").read_text())
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_the_minute_table_splits_sends_blocks_and_node_cpu_by_whole_minute():
    from devnet.bench.measure import NodeSample
    from devnet.bench.minutes import minute_table

    # a window of 140 s from t=10: two whole minutes, [10, 70) and [70, 130); the last 10 s are left out
    sends = [(10.0, 0.1), (30.0, 0.3), (69.9, None), (70.0, 2.0), (129.0, 4.0), (131.0, 9.0), (5.0, 9.0)]
    blocks = [(20.0, 60), (60.0, 60), (100.0, 120), (140.0, 999)]
    # node CPU grows 3 s in the first minute and 12 s in the second (samples every 30 s; the first at or after a
    # minute's edge counts); two nodes, the second idle
    busy = [(t, NodeSample(cpu_s=c, rss_mb=1, hwm_mb=1)) for t, c in ((10, 0), (40, 1), (70, 3), (100, 9), (130, 15))]
    idle = [(t, NodeSample(cpu_s=5, rss_mb=1, hwm_mb=1)) for t in (10, 70, 130)]
    table = minute_table(10.0, 150.0, sends, blocks, {"a": busy, "b": idle})
    assert [m.minute for m in table] == [1, 2]
    first, second = table
    assert (first.sent, second.sent) == (3, 2)
    assert first.p50_s == pytest.approx(0.2) and second.p50_s == pytest.approx(3.0)
    assert second.p99_s == pytest.approx(2.0 + 0.99 * 2.0)
    assert (first.committed_tps, second.committed_tps) == (2.0, 2.0)
    assert (first.blocks_per_s, second.blocks_per_s) == (pytest.approx(2 / 60), pytest.approx(1 / 60))
    assert first.node_cpu_ms_per_tx == pytest.approx(1000 * 3 / 120)
    assert second.node_cpu_ms_per_tx == pytest.approx(1000 * 12 / 120)
    assert second.as_dict()["node_cpu_ms_per_tx"] == 100.0
    # a node without a sample after the window's end leaves the CPU unknown, not understated
    assert minute_table(10.0, 150.0, sends, blocks, {"a": busy[:-1]})[1].node_cpu_ms_per_tx is None
    # a last part minute of 40 s counts, its rates over its 40 s; the send and block at its end do not
    last = minute_table(10.0, 170.0, sends + [(170.0, 1.0)], blocks + [(170.0, 5)], {"a": busy})[-1]
    assert (last.minute, last.sent, last.p50_s, last.committed_tps) == (3, 1, 9.0, 999 / 40)
    assert last.node_cpu_ms_per_tx is None  # no sample at or after 170


def test_memory_parts_read_what_the_node_reports_and_leave_out_the_rest():
    from devnet.bench.measure import memory_by_minute, memory_parts

    text = "\n".join([
        "# HELP ledger_heap_bytes The C allocator's bytes",
        'ledger_heap_bytes{part="in_use"} 1.5e+07',
        'ledger_heap_bytes{part="free"} 2500000.0',
        'ledger_heap_bytes{part="other"} 9.0',
        "ledger_store_memory_bytes 8000000.0",
        "ledger_python_blocks 350000.0",
        'ledger_python_heap_bytes{part="arenas"} 9.437184e+07',
        'ledger_python_heap_bytes{part="in_use"} 8.0e+07',
        'ledger_python_heap_bytes_total{part="in_use"} 1.0',
        'ledger_resident_bytes{kind="anon"} 1e8',
        'ledger_resident_bytes{kind="file"} 3e7',
    ])
    assert memory_parts(text) == {"heap_in_use_mb": 15.0, "heap_free_mb": 2.5, "leveldb_mb": 8.0,
                                  "python_arenas_mb": 94.4, "python_in_use_mb": 80.0, "anon_mb": 100.0}
    assert memory_parts("ledger_heap_bytes{part=\"in_use\"} NaNx") == {}

    from types import SimpleNamespace
    from typing import Any

    from devnet.bench.measure import NodeSample

    samples = [(t, NodeSample(cpu_s=t, rss_mb=1, hwm_mb=1, memory={"leveldb_mb": float(t)} if t % 40 == 0 else None))
               for t in range(0, 130, 10)]
    fake: Any = SimpleNamespace(samples={"validator-0": samples})
    # only the samples that scraped /metrics count: the first one at or after each minute's end
    assert memory_by_minute(fake, 0.0)["validator-0"]["leveldb_mb"] == [80.0, 120.0]
    assert memory_by_minute(fake, 0.0)["validator-0"]["heap_free_mb"] == []



@pytest.mark.processes
def test_a_terminated_bench_stops_the_nodes_it_started(tmp_path):
    """``kill PID`` (or ``timeout``) on a running bench stops its devnet too, as its end does."""
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "net"
    command = [sys.executable, "-m", "devnet.cli", "bench", "--validators", "4", "--duration", "120", "--rate", "20",
               "--accounts", "8", "--utxos", "100", "--home", str(home), "--quiet", "--verify-seconds", "0.2"]
    stderr = open(tmp_path / "bench.err", "w")  # noqa: SIM115 (closed below; a pipe nobody reads could fill)
    bench_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and bench_process.poll() is None:
            files = [home / f"validator-{i}" / "node.pid" for i in range(4)]
            log = home / "validator-0" / "node.log"
            loaded = log.exists() and any(" txs=" in line and " txs=0 " not in line
                                          for line in log.read_text().splitlines())
            if loaded and all(f.exists() for f in files):  # under load: the bench's event loop is running
                pids = [int(f.read_text()) for f in files]
                if all(os.path.exists(f"/proc/{pid}") for pid in pids):
                    break
            time.sleep(0.2)
        assert len(pids) == 4, (tmp_path / "bench.err").read_text()
        bench_process.send_signal(signal.SIGTERM)
        code = bench_process.wait(timeout=60)
        assert code == 128 + signal.SIGTERM
        for pid in pids:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
    finally:
        if bench_process.poll() is None:
            bench_process.kill()
            bench_process.wait()
        stderr.close()
        for pid in pids:  # what the bench left running, stopped by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
