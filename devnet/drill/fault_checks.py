"""The checks the fault kinds add: the twin's evidence, liveness after every heal, block times, tampering.

- twin: its equivocation is in ``GET /v1/evidence`` of an honest node (both
  votes signed by the victim's key) and no honest validator is accused;
- liveness: no heal is followed by a stall longer than the bound (the
  verdict reports the longest);
- block times (BFT time, under a skewed clock too): strictly increasing, and
  within the honest clocks: after the drill's start, before the drill first
  saw the height, ``TIME_TOLERANCE_S`` slack each;
- tampering: while a Byzantine validator tampered, the chain moved on and no
  honest node stopped.
"""

from __future__ import annotations

import time
from collections import Counter

from node.consensus.messages import Vote, verify_vote
from node.crypto import derive_public_key

TIME_TOLERANCE_S = 5.0
"""Slack on the honest-clock bounds of block times (polling delay, whole-second genesis time)."""


async def check_evidence(checker) -> None:
    """The twin's equivocation is recorded (with valid signatures) by another validator; no honest one is accused."""
    net = checker.net
    # every key that was, is or may become a validator in this drill (genesis, joined, rotated in)
    keys = {address.hex(): derive_public_key(net.keys[name]) for name, address in net.validator_addresses.items()}
    names = {address.hex(): name for name, address in net.validator_addresses.items()}
    victim = net.twin_victim
    by_node: dict[str, int] = {}
    against: Counter = Counter()
    invalid = []
    for name in net.names:
        try:
            records = (await checker.get(name, "/v1/evidence")).json()["evidence"]
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # no answer, or not an evidence list
            invalid.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        by_node[name] = len(records)
        for rec in records:
            against[names.get(rec["validator"], rec["validator"])] += 1
            try:
                a = Vote.decode(bytes.fromhex(rec["vote_a"]["encoded"]))
                b = Vote.decode(bytes.fromhex(rec["vote_b"]["encoded"]))
                same_slot = (a.vote_type, a.height, a.round, a.validator) == \
                            (b.vote_type, b.height, b.round, b.validator)
                pk = keys[a.validator.hex()]
                signed = all(verify_vote(net.chain_id, pk, v) for v in (a, b))
                if not (same_slot and signed and a.block_hash != b.block_hash):
                    invalid.append(f"{name}: {rec['validator']} h={rec['height']} not a valid equivocation")
            except (KeyError, ValueError) as exc:
                invalid.append(f"{name}: undecodable evidence {exc}")
    checker.details["evidence_by_node"] = by_node
    checker.details["evidence_against"] = dict(against)
    honest_accused = {v: c for v, c in against.items() if v != victim}
    twin_ran = checker.nemesis.applied.get("twin", 0) > 0
    if checker.twin_enabled and twin_ran:
        found = against.get(victim, 0)
        honest_nodes = [n for n in by_node if n != victim and by_node[n]]
        checker.add(f"twin evidence against {victim}", f"{found} records; on {len(honest_nodes)} of "
                    f"{len(net.names) - 1} other nodes", found > 0 and bool(honest_nodes),
                    f"the twin of {victim} ran but no other validator recorded evidence")
    elif checker.twin_enabled:
        checker.add("twin evidence", "twin did not run", False, "the twin was planned but never ran")
    checker.add("evidence against honest validators", sum(honest_accused.values()) or 0, not honest_accused,
                f"honest validators accused of equivocation: {honest_accused}")
    checker.add("evidence records that fail verification", len(invalid), not invalid,
                f"bad evidence: {invalid[:3]}")


def check_liveness(checker) -> None:
    report = checker.nemesis.monitor.report()
    checker.details["liveness"] = report
    bound = report["bound_s"]
    if report["error"]:  # stalls after its failure were not measured: the verdict must not read as a stall
        checker.add("height monitor ran to the end", f"failed: {report['error']}", False)
    if not report["heals"]:
        checker.add("longest stall after a heal", f"no heals (bound {bound:g}s)", True)
        return
    if report["exceeded"]:
        value = f"> {bound:g}s after {report['exceeded'][0]} ({len(report['exceeded'])} of {report['heals']} heals)"
    else:
        value = f"{report['longest_stall_s']:.1f}s after {report['longest_after']} (bound {bound:g}s, " \
                f"{report['heals']} heals)"
    checker.add("longest stall after a heal", value, not report["exceeded"],
                f"no new height within {bound:g}s after: {report['exceeded'][:5]}")


def block_time_findings(times: list[tuple[int, int]], start_wall: float, seen_wall: dict[int, float],
                        fallback_wall: float, tolerance_s: float = TIME_TOLERANCE_S) -> dict:
    """Block times (height, time_ms) against the honest clocks: each must be after the drill's start and
    before the drill first saw its height (``fallback_wall`` for heights it never polled), each with
    ``tolerance_s``, and strictly after the one before."""
    not_increasing, early, late = [], [], []
    worst_ahead = None
    prev = None
    for height, time_ms in times:
        t = time_ms / 1000
        if prev is not None and time_ms <= prev:
            not_increasing.append(height)
        prev = time_ms
        seen = seen_wall.get(height, fallback_wall)
        ahead = t - seen
        worst_ahead = ahead if worst_ahead is None else max(worst_ahead, ahead)
        if t < start_wall - tolerance_s:
            early.append({"height": height, "time_ms": time_ms, "before_start_s": round(start_wall - t, 1)})
        if ahead > tolerance_s:
            late.append({"height": height, "time_ms": time_ms, "after_seen_s": round(ahead, 1)})
    return {"not_increasing": not_increasing, "early": early, "late": late,
            "worst_ahead_s": None if worst_ahead is None else round(worst_ahead, 2)}


def check_block_times(checker, blocks: list[dict]) -> None:
    net, mon = checker.net, checker.nemesis.monitor
    times = [(b["height"], int(b["header"]["time_ms"])) for b in blocks]
    found = block_time_findings(times, net.started_wall, mon.seen_wall, time.time())
    checker.details["block_times"] = found
    checker.add("block times strictly increase", f"{len(times) - len(found['not_increasing'])}/{len(times)}",
                not found["not_increasing"], f"block time not after its parent at heights "
                                             f"{found['not_increasing'][:10]}")
    clock = f"; clock skew applied x{checker.nemesis.applied['clock']}" if checker.nemesis.applied.get("clock") else ""
    bad = found["early"] + found["late"]
    checker.add(f"block times within honest clocks (±{TIME_TOLERANCE_S:g}s)",
                f"{len(times) - len(bad)}/{len(times)}; latest {found['worst_ahead_s']}s vs first seen{clock}",
                not bad, f"block times outside the honest clocks: {bad[:5]}")


def check_tamper(checker) -> None:
    runs = checker.nemesis.tamper_runs
    checker.details["tamper"] = runs
    for run in runs:
        name = f"tamper by {run['victim']}"
        sent = run["tampered"]
        checker.add(f"{name}: chain moved on", f"heights {run['tip_before']} -> {run['tip_during']}; tampered "
                    f"proposals {sent['proposals']}, sync answers {sent['sync_answers']}, decided blocks "
                    f"{sent['decided']}",
                    run["tip_during"] > run["tip_before"], f"{name}: the chain did not move while it ran")
        stopped = [(e["node"], e["exit_code"]) for e in run["honest_exits"]]
        checker.add(f"{name}: honest nodes that stopped", len(stopped), not stopped,
                    f"{name}: honest nodes stopped: {stopped}")
