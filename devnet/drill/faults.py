"""The faults themselves: how each kind is applied and healed (the Nemesis runs them in plan order).

- ``kill``: SIGKILL one validator, restart it a few seconds later;
- ``killall``: SIGKILL every validator at once, restart them all;
- ``pause``: SIGSTOP one or two validators, SIGCONT later;
- ``partition``: isolate one validator, split 2/2, or a ring of majorities, then heal;
- ``slow``: delay, jitter, retransmission stalls and resets on every link;
- ``twin``: a process with a copy of one validator's key, run as a key thief's node would (``devnet.byzantine
  --equivocate``: a conflicting nil vote for each block vote), until its equivocation shows in the evidence; as
  nodes keep one connection per key (key-in-use), the victim's links to half the other nodes are cut
  meanwhile, so the twin reaches those and the victim the rest;
- ``lag``: faults overlap, up to f faulty at once plus a lagging honest node.
  One validator is paused (SIGSTOP) until the others are ``LAG_AHEAD``
  heights ahead (bounded in time), then a second one goes down (SIGSTOP or
  SIGKILL: the faulty one), then the first resumes: with 3 of 4 up the chain
  must move on within the liveness bound before the second is healed;
- ``clock``: one validator restarts with its clock off (config key
  ``clock_offset_ms``, from -10 minutes to +10 years), keeps it for the
  step, then restarts on the true time;
- ``reconfig``: one change of the validator set (``devnet.drill.reconfig``);
- ``tamper``: the validator's honest process is replaced by
  ``devnet/byzantine.py`` on the same home, which sends some peers tampered
  proposals, block-sync answers and round-state (decided block) answers
  (same header and id, one transaction signature changed).  Meanwhile one
  targeted honest validator falls behind, cut off from every honest peer and
  from what the Byzantine one pushes, so it can only fetch blocks from the
  Byzantine one.  Then its links heal and the honest process comes back.

Each ``run_KIND(nem, step)`` returns False when the step could not run here
(then it does not count as applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import httpx

from devnet.cluster import LOG_FILE, fetch_statuses
from devnet.drill.network import TWIN_NAME, clock_offset_supported, set_clock_offset
from devnet.drill.plan import format_offset
from devnet.drill.reconfig import run_reconfig

LAG_WAIT_MAX_S = 20.0
"""Bound on waiting for the others to get ``ahead`` heights past the paused validator."""
TAMPER_LOG_MARKS = {"proposals": "byzantine: tampered proposal", "sync_answers": "byzantine: tampered sync answer",
                    "decided": "byzantine: tampered decided block"}
TAMPER_LAG_AHEAD = 4
"""How far the targeted honest node falls behind before it is left with only the Byzantine peer."""


# --------------------------------------------------------------------------- crashes, pauses, links


async def run_kill(nem, step) -> None:
    net, d = nem.net, step.detail
    pids = await net.kill([d["node"]])
    nem.event("kill", f"SIGKILL {d['node']} (pid {pids[0] if pids else '-'})")
    await nem.sleep(step.duration_s)
    pid = net.start(d["node"])
    nem.event("restart", f"{d['node']} (pid {pid}) after {step.duration_s:.1f}s down")


async def run_killall(nem, step) -> None:
    net = nem.net
    names = list(net.names)  # every node: the validators of the set now and the full nodes
    pids = await net.kill(names)
    nem.event("killall", f"SIGKILL {len(pids)} nodes (pids {' '.join(map(str, pids))})")
    await asyncio.sleep(step.duration_s)
    pids = [net.start(n) for n in names]
    nem.event("restart", f"all nodes (pids {' '.join(map(str, pids))}) after {step.duration_s:.1f}s")


async def run_pause(nem, step) -> None:
    net, d = nem.net, step.detail
    pids = [net.pause(n) for n in d["nodes"]]
    nem.event("pause", f"SIGSTOP {', '.join(d['nodes'])} (pids {' '.join(map(str, pids))})")
    await nem.sleep(step.duration_s)
    for n in d["nodes"]:
        net.resume(n)
    nem.event("resume", f"SIGCONT {', '.join(d['nodes'])} after {step.duration_s:.1f}s")


async def run_partition(nem, step) -> None:
    net, d = nem.net, step.detail
    for a, b in d["cut"]:
        net.proxy.cut(a, b)
    nem.event("partition", f"{d['shape']}: {d['label']} (cut {len(d['cut'])} pairs)")
    await nem.sleep(step.duration_s)
    net.proxy.heal()
    nem.event("heal", f"partition {d['shape']} after {step.duration_s:.1f}s")


async def run_slow(nem, step) -> None:
    net, d = nem.net, step.detail
    net.proxy.set_slow(d["delay_ms"] / 1000, d["jitter_ms"] / 1000, d["loss"], d["reset"])
    nem.event("slow", step.describe())
    await nem.sleep(step.duration_s)
    net.proxy.heal()
    nem.event("heal", f"slow links after {step.duration_s:.1f}s")


# --------------------------------------------------------------------------- the twin


async def run_twin(nem, step) -> None:
    net = nem.net
    victim = step.detail["victim"]
    if TWIN_NAME not in net.specs:
        nem.event("skip", "twin: no twin home")
        return
    victim_hex = net.validator_addresses[victim].hex()
    from_height = await height_now(nem)
    # A node keeps one connection per key and refuses a second process with it (key-in-use): the twin reaches
    # the nodes whose link to the victim is cut, the victim the others; honest nodes relay both sides' votes.
    others = sorted(n for n in net.names if n != victim)
    twin_side = sorted(random.Random(f"drill-twin-{net.seed}-{step.at_s}").sample(others, len(others) // 2))
    for name in twin_side:
        net.proxy.cut(victim, name)
    # the twin runs as a key thief's node would: besides the votes the victim also signs, a conflicting nil vote
    # for each block vote (deterministic signing would otherwise make the two processes' votes the same bytes)
    pid = net.start_byzantine(TWIN_NAME, [], equivocate=True)
    nem.event("twin", f"started twin of {victim} (pid {pid}) with {victim}'s key at height {from_height}; "
                      f"{victim} cut from {', '.join(twin_side)} (the twin's side)")
    started = time.monotonic()
    found_at = None
    while time.monotonic() - started < step.duration_s:
        await nem.sleep(2.0)
        records = [r for r in await evidence_now(nem, victim_hex) if r["height"] >= from_height]
        if records and found_at is None:
            found_at = time.monotonic() - started
            nem.evidence_seen_during_twin = records
            nem.event("evidence", f"{len(records)} new record(s) against {victim} at heights "
                                  f"{sorted({r['height'] for r in records})[:5]} after {found_at:.1f}s")
        if found_at is not None and time.monotonic() - started >= min(step.duration_s, found_at + 5):
            break
    await net.terminate(TWIN_NAME)
    net.proxy.heal()
    nem.event("twin-stop", f"twin of {victim} stopped after {time.monotonic() - started:.1f}s, its links healed")


async def height_now(nem) -> int:
    """The highest height any validator reports now."""
    http = nem.workload.http
    assert http is not None
    answers = await fetch_statuses([nem.net.specs[n] for n in nem.net.names], 2, http)
    return max([0] + [int(a["height"]) for a in answers if a is not None])


async def evidence_now(nem, victim_hex: str) -> list[dict]:
    """Every validator's evidence records against ``victim_hex`` now, each with the node that holds it."""
    http = nem.workload.http
    assert http is not None
    records = []
    for name in nem.net.names:
        try:
            r = await http.get(nem.net.url(name) + "/v1/evidence", timeout=2)
            if r.status_code == 200:
                records += [dict(e, seen_by=name) for e in r.json()["evidence"] if e["validator"] == victim_hex]
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            continue
    return records


# --------------------------------------------------------------------------- overlapping, clock and Byzantine faults


async def run_lag(nem, step) -> None:
    net, mon, d = nem.net, nem.monitor, step.detail
    lagger, faulty, kill = d["lagger"], d["faulty"], d["mode"] == "kill"
    started = time.monotonic()
    base = await mon.height_of(lagger)
    pid = net.pause(lagger)
    nem.event("lag", f"SIGSTOP {lagger} (pid {pid}) at height {base}")
    reached = await mon.wait_tip(base + d["ahead"], min(LAG_WAIT_MAX_S, step.duration_s * 0.6))
    if kill:
        pids = await net.kill([faulty])
        what = f"SIGKILL {faulty} (pid {pids[0] if pids else '-'})"
    else:
        what = f"SIGSTOP {faulty} (pid {net.pause(faulty)})"
    short = "" if reached else f" (wanted {d['ahead']}, waited {time.monotonic() - started:.0f}s)"
    n = len(net.members)
    nem.event("lag", f"{what} with {lagger} {mon.tip - base} heights behind{short}: {n - 2} of {n} validators up")
    await nem.sleep(d["gap_s"])
    net.resume(lagger)
    nem.event("resume", f"SIGCONT {lagger} {mon.tip - base} heights behind, {faulty} still down: "
                        f"{n - 1} of {n} up, the chain must move on")
    await mon.settle()  # the lagging node's recovery is judged before the faulty one comes back
    await nem.sleep(max(0.0, step.duration_s - (time.monotonic() - started)))
    if kill:
        nem.event("restart", f"{faulty} (pid {net.start(faulty)}) after the lag step")
    else:
        net.resume(faulty)
        nem.event("resume", f"SIGCONT {faulty} after the lag step")


async def run_clock(nem, step) -> bool:
    net, d = nem.net, step.detail
    name, offset = d["node"], d["offset_ms"]
    if not clock_offset_supported():
        nem.event("skip", f"clock: this node has no clock_offset_ms config key; {name} keeps the true time")
        return False
    home = net.specs[name].home
    await net.terminate(name)
    set_clock_offset(home, offset)
    nem.clock_offsets[name] = offset
    pid = net.start(name)
    nem.event("clock", f"{name} (pid {pid}) restarted with its clock {format_offset(offset)} ({offset} ms)")
    await nem.sleep(step.duration_s)
    await net.terminate(name)
    set_clock_offset(home, 0)
    nem.clock_offsets.pop(name, None)
    pid = net.start(name)
    nem.event("restart", f"{name} (pid {pid}) with its clock true again after {step.duration_s:.1f}s")
    return True


async def run_tamper(nem, step) -> None:
    net, mon, d = nem.net, nem.monitor, step.detail
    victim, targets, lagger = d["victim"], d["targets"], d["lagger"]
    started = time.monotonic()
    exits_before = len(net.unexpected_exits)
    tip_before = mon.tip
    log_path = net.specs[victim].home / LOG_FILE
    lines_before = count_tamper_lines(log_path)
    await net.terminate(victim)
    pid = net.start_byzantine(victim, list(targets))
    nem.byzantine.add(victim)
    nem.event("tamper", f"{victim} replaced by a Byzantine process (pid {pid}) that tampers with its proposals "
                        f"and the blocks it serves to {', '.join(targets)}")
    await nem.sleep(step.duration_s * 0.35)
    # A targeted honest node falls behind with no honest peer and nothing pushed to it: it can only fetch from
    # the Byzantine one (round-state answers, block sync), which serves it tampered blocks.  It must drop them and
    # stay up; once the links heal it catches up from honest peers.
    honest = [n for n in net.names if n not in (victim, lagger)]
    for other in honest:
        net.proxy.cut(lagger, other)
    net.proxy.cut_one_way(victim, lagger)
    base = await mon.height_of(lagger)
    net.pause(lagger)
    nem.event("lag", f"SIGSTOP {lagger} at height {base}, cut off from {', '.join(honest)} and from what "
                     f"{victim} pushes")
    await mon.wait_tip(base + TAMPER_LAG_AHEAD, min(10.0, step.duration_s * 0.3))
    net.resume(lagger)
    nem.event("lag", f"SIGCONT {lagger} {mon.tip - base} heights behind: it can fetch blocks only from the "
                     f"Byzantine {victim}")
    await nem.sleep(max(4.0, step.duration_s * 0.25))
    lagger_held = await mon.height_of(lagger)
    net.proxy.heal()
    nem.event("heal", f"{lagger}'s links (it was at height {lagger_held}, the others at {mon.tip})")
    await nem.sleep(max(0.0, step.duration_s - (time.monotonic() - started)))
    tip_during = mon.tip
    await net.terminate(victim)
    nem.byzantine.discard(victim)
    pid = net.start(victim)
    elapsed = time.monotonic() - started
    nem.event("restart", f"honest {victim} (pid {pid}) after {elapsed:.1f}s of the Byzantine one")
    after = count_tamper_lines(log_path)
    nem.tamper_runs.append({
        "victim": victim, "targets": targets, "lagger": lagger, "tip_before": tip_before, "tip_during": tip_during,
        "lagger_held_at": lagger_held, "seconds": round(elapsed, 1),
        "tampered": {k: after[k] - lines_before[k] for k in after},
        "honest_exits": [e for e in net.unexpected_exits[exits_before:] if e["node"] != victim],
        "byzantine_exits": [e for e in net.unexpected_exits[exits_before:] if e["node"] == victim],
    })


async def heal_byzantine_and_clocks(nem) -> None:
    """For heal-all: stop Byzantine processes and skewed clocks (the caller starts every stopped validator)."""
    for name in sorted(nem.byzantine):
        await nem.net.terminate(name)
    nem.byzantine.clear()
    for name in sorted(nem.clock_offsets):
        await nem.net.terminate(name)
        set_clock_offset(nem.net.specs[name].home, 0)
    nem.clock_offsets.clear()


def count_tamper_lines(path: Path) -> dict[str, int]:
    counts = {key: 0 for key in TAMPER_LOG_MARKS}
    with contextlib.suppress(OSError), open(path, errors="replace") as handle:
        for line in handle:
            for key, mark in TAMPER_LOG_MARKS.items():
                counts[key] += mark in line
    return counts


RUNNERS = {"kill": run_kill, "killall": run_killall, "pause": run_pause, "partition": run_partition,
           "slow": run_slow, "twin": run_twin, "lag": run_lag, "clock": run_clock, "tamper": run_tamper,
           "reconfig": run_reconfig}
"""Fault kind -> how to apply and heal it."""
