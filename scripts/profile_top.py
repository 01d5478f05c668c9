"""Summarize a py-spy raw (collapsed) profile: self and inclusive time of project code.

    python scripts/profile_top.py profile.txt [--all]

Frames of node/, genesis/ and devnet/ are listed by inclusive time (the
framework frames above them are left out unless --all), then by self time.
"""

from __future__ import annotations

import collections
import sys

PROJECT = ("node/", "genesis/", "devnet/", "wallet/")


def frame_name(frame: str) -> tuple[str, bool]:
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({path})", path.startswith(PROJECT)


def main(argv: list[str]) -> int:
    path = argv[0]
    show_all = "--all" in argv
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        if frames:
            own[frames[-1][0]] += n
        for name in {name for name, mine in frames if mine or show_all}:
            incl[name] += n
    print(f"samples: {total} (non-idle)")
    print("\n== inclusive time, project code ==")
    for name, n in incl.most_common(50):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("\n== self time ==")
    for name, n in own.most_common(35):
        print(f"{100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
