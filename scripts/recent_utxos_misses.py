"""How often ``RecentUtxos`` misses under the bench's spend pattern, for a few cache sizes.

    python scripts/recent_utxos_misses.py [--chains 64000] [--block 600] [--lateness 0.1] [--rounds 6]

The bench's transfers run as independent chains ("slots"): each one spends
the change output of its previous transfer once that transfer committed and
its turn comes round again, and pays two outputs (payment and change).
This replays that pattern through ``RecentUtxos`` block by block (plus one
fee output per block) and prints the share of spends the cache missed, that
is, the ones a node reads from LevelDB, twice per node (admission and
execution).  ``--lateness`` lets each chain's turn slip by up to that share
of a round, as slow or refused transfers make some chains fall behind.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

sys.path.insert(0, os.getcwd())

from node.ledger.recent_utxos import DEFAULT_MAX_ENTRIES, RecentUtxos  # noqa: E402 (after the sys.path line)
from node.ledger.state import UtxoEntry  # noqa: E402 (after the sys.path line)
from node.types.transaction import OutPoint  # noqa: E402 (after the sys.path line)


def miss_rate(cache_size: int, chains: int, block: int, lateness: float, rounds: int, seed: int) -> float:
    """Share of spends ``RecentUtxos(cache_size)`` did not answer over ``rounds`` turns of every chain."""
    rng = random.Random(seed)
    cache = RecentUtxos(cache_size)
    change: dict[int, OutPoint] = {}
    turns: list[int] = []
    for _ in range(rounds):
        turns.extend(sorted(range(chains), key=lambda c: c + rng.random() * lateness * chains))
    hits = misses = 0
    owner = bytes(20)
    for height, start in enumerate(range(0, len(turns), block), start=1):
        spent: list[tuple[OutPoint, UtxoEntry]] = []
        created: list[tuple[OutPoint, UtxoEntry]] = []
        for chain in turns[start:start + block]:
            previous = change.get(chain)
            if previous is not None:
                entry = cache.get(previous)
                if entry is None:
                    misses += 1
                else:
                    hits += 1
                    spent.append((previous, entry))
            txid = rng.randbytes(32)
            created.append((OutPoint(txid, 0), UtxoEntry(owner, 10_000, height)))
            created.append((OutPoint(txid, 1), UtxoEntry(owner, 1_000_000, height)))
            change[chain] = OutPoint(txid, 1)
        created.append((OutPoint(rng.randbytes(32), 0), UtxoEntry(owner, 1_000, height)))
        cache.apply(spent, created)
    return misses / max(1, hits + misses)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chains", type=int, default=64_000,
                   help="spend chains (the bench's --slots; default 64000, what its --max uses)")
    p.add_argument("--block", type=int, default=600, help="transfers per block (default 600)")
    p.add_argument("--lateness", type=float, default=0.1, help="most a turn slips, in rounds (default 0.1)")
    p.add_argument("--rounds", type=int, default=6, help="turns of every chain (default 6)")
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 65_536, 131_072, 147_456, DEFAULT_MAX_ENTRIES],
                   help=f"cache sizes to try (default 50000 65536 131072 147456 {DEFAULT_MAX_ENTRIES})")
    args = p.parse_args()
    if min(args.chains, args.block, args.rounds, *args.sizes) < 1 or args.lateness < 0:
        p.error("counts must be positive and --lateness at least 0")
    for size in args.sizes:
        rate = miss_rate(size, args.chains, args.block, args.lateness, args.rounds, seed=1)
        print(f"chains={args.chains} block={args.block} lateness={args.lateness} cache={size}: "
              f"{100 * rate:.1f}% of spends missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
