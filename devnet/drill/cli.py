"""The drill's command line: ``ledger-devnet drill ...`` and ``python -m devnet.drill ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import devnet.drill
from devnet.drill.plan import FAULT_KINDS
from devnet.drill.run import DrillOptions, run_drill_sync
from devnet.drill.verdict import format_table


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
                             "tamper: a Byzantine validator sends tampered blocks while a node lags behind it; "
                             "reconfig: the validator set changes: a node is added and joins, a validator quits "
                             "(and keeps running as a full node), a key is rotated, a power changes")
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
    parser = argparse.ArgumentParser(prog="ledger-devnet drill", description=devnet.drill.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_drill_arguments(parser)
    return run_drill(parser.parse_args(argv))
