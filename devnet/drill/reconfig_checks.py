"""The checks of a drill that changed its validator set (``reconfig`` steps).

- every change happened: each step's record, with its timings (add-node to
  caught up, JOIN to in the set, step start to first signed block, quit);
- the set every node reports at the end is the set the drill followed
  (names and powers), and ``/v1/validators/changes`` lists one change per
  applied join, quit and power change;
- the faults followed the set: every step's targets were validators of the
  set of its time, Byzantine ones (twin, tamper, clock) held less than a
  third of its power, and the set never had fewer than 4 validators;
- a validator that quit kept running as a full node: still running, not a
  validator by its own status, at the final height with the others.
"""

from __future__ import annotations

from devnet.drill.reconfig import format_set
from node.crypto import encode_address

CHANGES = {"join": 1, "quit": 1, "rotate": 2, "power": 1}
"""Set changes on chain per completed step."""
MIN_SET = 4


def describe_run(r: dict) -> str:
    """One step's outcome and timings, for the verdict table."""
    parts = []
    if "caught_up_s" in r:
        parts.append(f"caught up in {r['caught_up_s']}s")
    if "joined_at" in r:
        parts.append(f"power {r.get('power')}, in set at h{r['joined_at']} {r['in_set_s']}s after its JOIN")
    if "first_signed" in r:
        parts.append(f"first signed h{r['first_signed']} {r['first_signed_s']}s after add-node")
    if "left_at" in r:
        parts.append(f"{r.get('old', r['node'])} out at h{r['left_at']} after {r['quit_s']}s")
    if "applied_at" in r:
        parts.append(f"power {r['old_power']} -> {r['power']} at h{r['applied_at']} after {r['power_s']}s")
    parts.append(f"{r.get('seconds', '?')}s in all")
    if r.get("error"):
        parts.append(f"error: {r['error']}")
    return "; ".join(parts)


async def check_reconfig(checker) -> None:
    net, nem = checker.net, checker.nemesis
    runs = nem.reconfig_runs
    checker.details["reconfig"] = runs
    for r in runs:
        checker.add(f"reconfig at {r['at_s']:.0f}s: {r['op']} {r['node']}", describe_run(r), r["ok"],
                    f"reconfiguration {r['op']} {r['node']} failed: {r.get('error')}")
    by_address = {encode_address(a): n for n, a in net.validator_addresses.items()}
    sets, unread = {}, []
    for name in net.names:
        try:
            answer = (await checker.get(name, "/v1/validators")).json()
            sets[name] = {by_address.get(v["address"], v["address"]): int(v["power"])
                          for v in answer["validators"]}
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            unread.append(f"{name}: {type(exc).__name__}")
    differ = {n: format_set(s) for n, s in sets.items() if s != net.members}
    checker.add("validator set at the end == the drill's", f"{format_set(net.members)} on {len(sets)} of "
                f"{len(net.names)} nodes", not differ and not unread,
                f"nodes report another set: {differ or unread}")
    expected = 1 + sum(CHANGES[r["op"]] for r in runs if r["ok"])
    ref = next(iter(sets), net.names[0])
    try:
        changes = (await checker.get(ref, "/v1/validators/changes")).json()["changes"]
        heights = [c["height"] for c in changes]
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        heights = [f"unread: {exc}"]
    checker.details["validator_changes"] = heights
    checker.add("validator-set changes on chain", f"{len(heights) - 1} at heights {heights[1:]} (expected "
                f"{expected - 1})", len(heights) == expected)

    log = nem.fault_log
    skipped = [f"{e['kind']} at {e['t']:.0f}s: {e['targets']}" for e in log if e["skipped"]]
    checker.add("fault targets in the validator set of their time",
                f"{sum(1 for e in log if e['targets']) - len(skipped)}/{sum(1 for e in log if e['targets'])}",
                not skipped, f"steps whose validators had left the set: {skipped[:5]}")
    beyond = []
    for e in log:
        total = sum(e["set"].values())
        power = sum(e["set"].get(n, 0) for n in e["faulty"] if n)
        if e["faulty"] and 3 * power >= total:
            beyond.append(f"{e['kind']} {e['faulty']}: {power} of {total}")
    checker.add("Byzantine validators within f of the set of their time", f"{len(beyond)} beyond", not beyond,
                f"Byzantine power of a third or more: {beyond[:5]}")
    sizes = [len(e["set"]) for e in log] + [len(r["set_after"]) for r in runs if "set_after" in r]
    floor = min(MIN_SET, len(net.genesis.validators))
    checker.add("validators in the set (min/max over the drill)", f"{min(sizes, default=0)}/{max(sizes, default=0)}",
                min(sizes, default=floor) >= floor, f"the set fell below {floor} validators")

    final = checker.details.get("final_heights", {})
    top = min(final.values(), default=0)
    quitters = [r for r in runs if r["ok"] and r["op"] in ("quit", "rotate")]
    bad = []
    for r in quitters:
        name = r.get("old", r["node"])
        if not (net.running(name) and r.get("is_validator") is False and final.get(name, -1) >= top):
            bad.append(f"{name}: running {net.running(name)}, is_validator {r.get('is_validator')}, "
                       f"height {final.get(name)}")
    if quitters:
        checker.add("validators that quit keep following as full nodes",
                    ", ".join(r.get("old", r["node"]) for r in quitters), not bad, f"after quitting: {bad}")
