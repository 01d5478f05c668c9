"""``ledger-node snapshot list|export``: the snapshots a node took, and one of them as a file to carry by hand.

Both read ``HOME/snapshots`` only, so they work while the node runs.  A
file made by ``export`` starts another node with ``ledger-node init
--from-snapshot FILE`` (``node.snapshot_file`` checks it from the genesis).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.errors import CodedError
from node.snapshot_file import export_snapshot
from node.snapshots import SNAPSHOTS_DIR, SnapshotStore


def cmd_snapshot(args: argparse.Namespace) -> int:
    snapshots = SnapshotStore(Path(args.home) / SNAPSHOTS_DIR)
    try:
        if args.action == "list":
            rows: list[dict] = [
                {"height": i.height, "block_hash": i.manifest.block_hash.hex(), "app_hash": i.manifest.app_hash.hex(),
                 "outputs": i.manifest.outputs, "bytes": i.manifest.size,
                 "exportable": snapshots.has_anchor(i.height)} for i in snapshots.list()]
            if args.json:
                print(json.dumps({"snapshots": rows}))
            elif not rows:
                print(f"no snapshots in {snapshots.folder} yet (one every snapshot_interval heights)")
            for row in rows if not args.json else []:
                print(f"height {row['height']}: {row['outputs']} outputs, {row['bytes']} bytes compressed, "
                      f"app hash {row['app_hash'][:16]}")
            return 0
        manifest = export_snapshot(snapshots, args.height, Path(args.out))
    except (CodedError, OSError) as exc:
        print(f"error: {getattr(exc, 'code', 'io-error')}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    out = {"height": manifest.height, "out": args.out, "outputs": manifest.outputs,
           "bytes": Path(args.out).stat().st_size}
    print(json.dumps(out) if args.json else f"wrote the snapshot at height {manifest.height} ({manifest.outputs} "
                                           f"outputs) to {args.out}: {out['bytes']} bytes")
    return 0


def add_snapshot_parser(sub) -> None:
    p = sub.add_parser("snapshot", help="list the node's snapshots, or export one to a file")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="the snapshots in HOME/snapshots (works while the node runs)")
    q.add_argument("--home", required=True, help="the node's home")
    q.add_argument("--json", action="store_true", help="as JSON")
    q.set_defaults(func=cmd_snapshot)
    q = actions.add_parser("export", help="write one snapshot to a file (for `ledger-node init --from-snapshot`)")
    q.add_argument("--home", required=True, help="the node's home")
    q.add_argument("--height", type=int, help="the snapshot's height (default: the latest)")
    q.add_argument("--out", required=True, help="the file to write")
    q.add_argument("--json", action="store_true", help="height, file and size as JSON")
    q.set_defaults(func=cmd_snapshot)
