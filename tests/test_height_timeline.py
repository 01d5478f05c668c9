"""The phases of a height on one node, cut at its own consensus steps (node.height_timeline)."""

from node.height_timeline import HeightTimeline, format_phases


def test_a_validator_sees_every_phase():
    t = HeightTimeline(committed=10.0, started=10.1, prevoted=10.15, precommitted=10.4, decided=10.5)
    phases = t.phases(10.52)
    assert {k: round(v, 3) for k, v in phases.items()} == {
        "wait": 0.1, "proposal": 0.05, "prevotes": 0.25, "precommits": 0.1, "apply": 0.02}
    assert format_phases(phases) == "wait_ms=100 proposal_ms=50 prevotes_ms=250 precommits_ms=100 apply_ms=20"


def test_a_node_that_does_not_vote_gets_one_consensus_phase():
    t = HeightTimeline(committed=5.0, started=5.2, decided=5.9)
    assert {k: round(v, 3) for k, v in t.phases(6.0).items()} == {"wait": 0.2, "consensus": 0.7, "apply": 0.1}


def test_a_block_from_block_sync_is_all_waiting_then_written():
    t = HeightTimeline(committed=1.0)
    assert t.phases(3.0) == {"wait": 2.0}


def test_a_step_is_marked_once():
    t = HeightTimeline(committed=0.0)
    t.mark("prevoted")
    first = t.prevoted
    t.mark("prevoted")
    assert t.prevoted == first and t.started is None
