"""The C allocator's fixed mmap threshold (``node.heap_policy``): the recent outputs cache, churning at its bound,
leaves resident memory flat with it and steps it up at each rebuild of its table without it.

Each case runs in its own interpreter: the allocator's settings are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from node.heap_policy import _MALLOPT, fix_mmap_threshold

CHURN = r"""
import json, os, sys
from node.heap_policy import fix_mmap_threshold
from node.ledger.recent_utxos import RecentUtxos
from node.ledger.state import UtxoEntry
from node.types.transaction import OutPoint

fixed = fix_mmap_threshold(int(sys.argv[1]))

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

cache = RecentUtxos(max_entries=65_536)
entry = UtxoEntry(b"a" * 20, 1, 1)
change = None
samples = []
for i in range(320_000):  # a transfer spends the last change and creates two outputs (as the bench's chains do)
    txid = os.urandom(32)
    created = [(OutPoint(txid, 0), entry), (OutPoint(txid, 1), entry)]
    cache.apply([] if change is None else [(change, entry)], created)
    change = created[0][0]
    if i >= 100_000 and i % 2_000 == 0:  # after the cache is full and its table at its steady size
        samples.append(rss_mb())
print(json.dumps({"fixed": fixed, "low": min(samples), "high": max(samples)}))
"""


def churn(threshold: int) -> dict:
    run = subprocess.run([sys.executable, "-c", CHURN, str(threshold)], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(_MALLOPT is None, reason="the C library has no mallopt (not glibc)")
def test_a_churning_cache_keeps_resident_memory_flat_with_a_fixed_threshold():
    moving = churn(0)  # glibc's default: each freed table raises the threshold above the next one
    fixed = churn(1 << 20)
    assert not moving["fixed"] and fixed["fixed"]
    assert moving["high"] - moving["low"] >= 5, moving  # the old tables stay resident until a trim
    assert fixed["high"] - fixed["low"] <= 2, fixed


def test_zero_leaves_the_allocator_alone():
    assert fix_mmap_threshold(0) is False


def test_a_threshold_glibc_would_refuse_is_a_config_error():
    from node.config import ConfigError, NodeConfig, check_config
    for bad in (-1, 100, (32 << 20) + 1):
        with pytest.raises(ConfigError, match="malloc_mmap_threshold"):
            check_config(NodeConfig(malloc_mmap_threshold=bad))
    for good in (0, 4096, 1 << 20, 32 << 20):
        check_config(NodeConfig(malloc_mmap_threshold=good))
