"""The drill's ``reconfig`` fault kind: the validator set changes while the bank workload runs and other faults
happen, and every fault and check follows the set of its time, not genesis."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from devnet.drill import DrillOptions, format_table, plan_faults, run_drill_sync, validator_names
from devnet.drill.membership import RECONFIG_OPS, PlannedSet, balanced, partition_extras
from devnet.drill.nemesis import faulty_of, step_targets

# --------------------------------------------------------------------------- the plan


def test_plan_follows_the_set_it_changes():
    """Each step targets the validators of its time; the set keeps 4+ validators, each with less than a third of
    the power; the twin's victim never leaves; every change kind runs in a 300 s drill."""
    genesis = validator_names(4)
    for seed in range(1, 40):
        plan = plan_faults(seed, 300, ["reconfig", "kill", "partition", "twin"], 4)
        assert plan == plan_faults(seed, 300, ["reconfig", "kill", "partition", "twin"], 4)
        members = dict.fromkeys(genesis, 10)
        nodes = list(genesis)
        victims = {s.detail["victim"] for s in plan if s.kind == "twin"}
        assert len(victims) <= 1, seed
        ops = []
        for step in plan:
            d = step.detail
            if step.kind == "reconfig":
                assert d["before"] == members, (seed, step)
                ops.append(d["op"])
                if d["op"] in ("join", "rotate"):
                    assert d["node"] not in nodes
                    nodes.append(d["node"])
                if d["op"] in ("quit", "rotate"):
                    assert d.get("old", d["node"]) not in victims
                members = d["after"]
                assert len(members) >= 4 and balanced(members), (seed, members)
                continue
            assert set(step_targets(step)) <= set(members), (seed, step)
            assert d["members"] == list(members)
            if step.kind == "partition":
                where = {n: i for i, g in enumerate(d["groups"]) for n in g}
                if d["shape"] != "ring":  # every node is on one side: no full node bridges the cut
                    assert set(where) == set(nodes), (seed, step)
                else:  # outside the set: linked to one validator only
                    cut = {frozenset(p) for p in d["cut"]}
                    for extra in set(nodes) - set(members):
                        assert len([m for m in members if frozenset((extra, m)) not in cut]) == 1, (seed, step)
        assert set(RECONFIG_OPS) <= set(ops), (seed, ops)
        assert ops[0] == "join"


def test_old_plans_unchanged_without_reconfig():
    """Without ``reconfig`` the targets come from genesis exactly as before (the same draws)."""
    plan = plan_faults(7, 60, ["kill", "killall", "partition", "pause"], 4)
    assert [(s.kind, s.at_s, s.duration_s) for s in plan] == [
        ("kill", 4.0, 6.5), ("partition", 15.3, 10.1), ("killall", 29.7, 1.7), ("pause", 35.0, 4.5),
        ("kill", 42.7, 4.1)]
    assert all("members" not in s.detail for s in plan)


def test_partition_puts_full_nodes_on_a_side():
    rng = random.Random(1)
    members = validator_names(4)
    split = {"shape": "split", "groups": [members[:2], members[2:]], "label": "x",
             "cut": [[a, b] for a in members[:2] for b in members[2:]], "members": members}
    out = partition_extras(rng, split, ["full-0"])
    side = next(g for g in out["groups"] if "full-0" in g)
    assert {frozenset(p) for p in out["cut"]} == {frozenset((a, b)) for a in side for g in out["groups"]
                                                  if g is not side for b in g}
    ring = {"shape": "ring", "groups": [], "label": "ring", "cut": [["validator-0", "validator-2"]],
            "members": members}
    out = partition_extras(rng, ring, ["full-0"])
    linked = [m for m in members if frozenset(("full-0", m)) not in {frozenset(p) for p in out["cut"]}]
    assert linked == [out["anchors"]["full-0"]]


def test_byzantine_steps_name_their_faulty_validator():
    plan = plan_faults(3, 300, ["reconfig", "twin"], 4)
    twins = [s for s in plan if s.kind == "twin"]
    assert twins and all(faulty_of(s) == [s.detail["victim"]] for s in twins)
    assert PlannedSet.genesis(validator_names(4), random.Random(1), None).script[0] == "join"


# --------------------------------------------------------------------------- real drills


def _run(tmp_path: Path, seed: int, duration: float, faults: tuple[str, ...]):
    json_path = tmp_path / "drill.json"
    opts = DrillOptions(seed=seed, duration_s=duration, faults=faults, home=tmp_path / "drill", json_path=json_path)
    lines: list[str] = []
    result = run_drill_sync(opts, out=lines.append)
    table = format_table(result, opts)
    print("\n".join(lines))
    print(table)
    return result, table, json.loads(json_path.read_text())


@pytest.mark.processes
@pytest.mark.timeout(420)
def test_drill_reconfig_joins_quits_rotates_and_changes_power(tmp_path):
    """Seed 5, 75 s, only ``reconfig``: a node joins, its key is rotated, the new key quits, a power changes."""
    result, table, report = _run(tmp_path, 5, 75, ("reconfig",))
    assert result.ok, table
    changes = report["validator_set"]
    assert changes["joined"] == ["full-0", "full-1"], table
    assert changes["quit"] == ["full-0", "full-1"], table
    assert changes["power_changes"] == [{"node": "validator-3", "from": 10, "to": 9}], table
    assert changes["final"] == {"validator-0": 10, "validator-1": 10, "validator-2": 10, "validator-3": 9}, table
    assert all(s["ok"] and s["seconds"] > 0 for s in changes["steps"]), table
    joins = [s for s in changes["steps"] if "first_signed" in s]
    assert joins and all(s["first_signed"] >= s["joined_at"] for s in joins), table
    assert report["nodes"] == validator_names(4) + ["full-0", "full-1"]
    checks = {c.name: c for c in result.checks}
    assert checks["validator-set changes on chain"].ok, table
    assert checks["validators that quit keep following as full nodes"].ok, table
    assert int(checks["acknowledged committed"].value) > 20, table


@pytest.mark.processes
@pytest.mark.timeout(420)
def test_drill_reconfig_with_kills_targets_the_current_set(tmp_path):
    """Seed 5, 90 s, ``reconfig,kill``: the joined node is killed as a validator, then rotated out; later kills
    target validators of the set of their time."""
    result, table, report = _run(tmp_path, 5, 90, ("reconfig", "kill"))
    assert result.ok, table
    assert report["validator_set"]["joined"] and report["validator_set"]["quit"], table
    kills = [e for e in report["fault_log"] if e["kind"] == "kill"]
    assert kills and all(e["targets"][0] in e["set"] and not e["skipped"] for e in kills), table
    assert any(e["targets"] == ["full-0"] for e in kills), table  # a joined node, down as a validator
    applied = {c.name: c for c in result.checks}["faults applied"].value
    assert "reconfig" in applied and "kill" in applied, table
