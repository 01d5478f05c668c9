"""The command line: ``ledger-node simulate ...`` and ``python -m simulation ...``."""

from __future__ import annotations

import argparse
import sys
import time

from simulation.byzantine import BEHAVIOURS
from simulation.faults import FAULT_MIXES
from simulation.invariants import SimResult
from simulation.world import run_simulation


def validator_counts(text: str) -> tuple[int, int]:
    """``N`` or ``LO-HI``: the genesis validator count, or a range the seed chooses from."""
    lo, _, hi = text.partition("-")
    try:
        counts = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LO-HI, got {text!r}") from None
    if not 1 <= counts[0] <= counts[1]:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI, got {text!r}")
    return counts


def byzantine_count(text: str) -> int | None:
    """An integer, or ``f`` (None): the most Byzantine validators below a third of the run's validators."""
    if text == "f":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or f, got {text!r}") from None


def run_shape(args: argparse.Namespace, seed: int) -> tuple[int, int]:
    """(validators, byzantine) of the run with ``seed``: a count from the range in turn, f = (n - 1) // 3."""
    lo, hi = args.validators
    validators = lo + seed % (hi - lo + 1)
    return validators, (validators - 1) // 3 if args.byzantine is None else args.byzantine


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=100, help="number of seeded runs (default 100)")
    parser.add_argument("--validators", type=validator_counts, default=(4, 4), metavar="N|LO-HI",
                        help="genesis validators per run, or a range each seed picks from in turn (default 4)")
    parser.add_argument("--byzantine", type=byzantine_count, default=1, metavar="B|f",
                        help="Byzantine validators per run, or f: the most below a third of the run's "
                             "validators (default 1)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--heights", type=int, default=8, help="heights each run must decide (default 8)")
    parser.add_argument("--fault-mix", choices=sorted(FAULT_MIXES), default=None,
                        help="force one fault mix (default: chosen per seed)")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, action="append", default=None,
                        help="restrict Byzantine behaviours (repeatable; default: all)")
    parser.add_argument("--weighted", action="store_true", help="unequal voting powers (1-4)")
    parser.add_argument("--reconfig", action=argparse.BooleanOptionalAction, default=True,
                        help="change the validator set during each run: spare nodes join, members quit, change "
                             "power or rotate keys, through the ledger's reconfiguration rules (default: on)")
    parser.add_argument("--stats", action="store_true", help="print figures per fault mix before the summary")


def _replay_hint(args: argparse.Namespace, result: SimResult) -> str:
    extra = f" --fault-mix {args.fault_mix}" if args.fault_mix else ""
    extra += " --weighted" if args.weighted else ""
    extra += "" if args.reconfig else " --no-reconfig"
    for b in args.behaviour or ():
        extra += f" --behaviour {b}"
    return (f"ledger-node simulate --seeds 1 --seed-start {result.seed} --validators {result.validators} "
            f"--byzantine {result.byzantine} --heights {args.heights}{extra}")


def run_simulate_command(args: argparse.Namespace) -> int:
    """Run the seeds, print one summary line; non-zero exit on any violation."""
    lo, hi = args.validators
    if args.seeds < 1 or lo < 1 or args.heights < 1 or (args.byzantine is not None and
                                                         not 0 <= args.byzantine < lo):
        print("simulate: need --seeds >= 1, --validators >= 1, 0 <= --byzantine < --validators, --heights >= 1",
              file=sys.stderr)
        return 2
    if args.byzantine is not None and 3 * args.byzantine >= lo:
        print(f"simulate: warning: {args.byzantine} Byzantine of {lo} exceeds f < n/3; violations are expected "
              "(and such runs keep the genesis set: reconfiguration needs f < n/3 to begin with)", file=sys.stderr)
    behaviours = tuple(args.behaviour) if args.behaviour else None
    started = time.perf_counter()
    runs = safety = liveness = heights = 0
    failures: list[SimResult] = []
    results: list[SimResult] = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        validators, byzantine = run_shape(args, seed)
        reconfig = args.reconfig and 3 * byzantine < validators  # the operators keep f < n/3; it must hold first
        result = run_simulation(seed, validators, byzantine, args.heights, fault_mix=args.fault_mix,
                                behaviours=behaviours, weighted=args.weighted, reconfig=reconfig)
        runs += 1
        safety += len(result.safety_violations) > 0
        liveness += len(result.liveness_failures) > 0
        heights += result.heights_decided
        results.append(result)
        if not result.ok:
            failures.append(result)
    wall = time.perf_counter() - started
    if args.stats:
        for line in format_stats(results, wall):
            print(line)
    for result in failures[:10]:
        reason = (result.safety_violations or result.liveness_failures)[0]
        print(f"FAILED seed={result.seed} mix={result.fault_mix} byzantine={','.join(result.behaviours) or '-'}: "
              f"{reason}")
        print(f"  replay: {_replay_hint(args, result)}")
    print(f"runs={runs} safety_violations={safety} liveness_failures={liveness} heights={heights}")
    return 1 if failures else 0


def _stats_line(name: str, results: list[SimResult]) -> str:
    rounds = [r + 1 for res in results for r in res.decision_rounds]
    decided = sum(res.heights_decided + res.extra_heights for res in results)
    sim_s = sum(res.sim_time_ms for res in results) / 1000
    return (f"{name:<17} {len(results):>5}  {decided:>7}  {sum(rounds) / max(len(rounds), 1):>13.2f}"
            f"  {max(rounds, default=0) - 1:>9}  {decided / max(sim_s, 1e-9):>13.2f}"
            f"  {max(res.worst_latency_after_gst_ms for res in results):>18}")


def format_stats(results: list[SimResult], wall_seconds: float) -> list[str]:
    """Per fault mix and per Byzantine behaviour: runs, heights decided, rounds per height (1 = decided
    in round 0), the highest decision round, heights per simulated second, and the longest wait for a
    decision after GST; then totals with heights per wall-clock second."""
    header = "{:<17} {:>5}  {:>7}  {:>13}  {:>9}  {:>13}  {:>18}".format(
        "", "runs", "heights", "rounds/height", "max_round", "heights/sim-s", "worst_after_gst_ms")
    lines = [header.replace(" " * 17, "fault mix".ljust(17), 1)]
    by_mix: dict[str, list[SimResult]] = {}
    by_behaviour: dict[str, list[SimResult]] = {}
    for res in results:
        by_mix.setdefault(res.fault_mix, []).append(res)
        for b in sorted(set(res.behaviours)) or ["(none)"]:
            by_behaviour.setdefault(b, []).append(res)
    lines += [_stats_line(name, by_mix[name]) for name in sorted(by_mix)]
    lines.append(header.replace(" " * 17, "byzantine".ljust(17), 1))
    lines += [_stats_line(name, by_behaviour[name]) for name in sorted(by_behaviour)]
    decided = sum(res.heights_decided + res.extra_heights for res in results)
    sim_s = sum(res.sim_time_ms for res in results) / 1000
    changed = [res for res in results if res.set_changes]
    lines.append(f"reconfiguration: runs={sum(res.reconfig for res in results)} with_set_changes={len(changed)} "
                 f"set_changes={sum(res.set_changes for res in results)} joined={sum(r.joined for r in results)} "
                 f"left={sum(r.left for r in results)} final_set_differs="
                 f"{sum(r.final_set_differs for r in results)} byzantine_across_changes="
                 f"{sum(r.byzantine_across_changes for r in results)}")
    lines.append(f"total heights={decided} simulated={sim_s:.1f}s wall={wall_seconds:.1f}s "
                 f"heights/sim-s={decided / max(sim_s, 1e-9):.2f} "
                 f"heights/wall-s={decided / max(wall_seconds, 1e-9):.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulation",
                                     description="Deterministic multi-node consensus simulation")
    add_simulate_arguments(parser)
    return run_simulate_command(parser.parse_args(argv))
