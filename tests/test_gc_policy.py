"""A node freezes what survives each garbage collection and, now and then, hands it back for one full collection
(node.gc_policy).

Each case that freezes runs in a fresh interpreter: freezing is process-wide and would otherwise reach into the
test runner's own heap.
"""

import asyncio
import collections
import subprocess
import sys
import textwrap

from node.config import NodeConfig
from node.gc_policy import SurvivorFreezer

PRELUDE = """
    import gc, weakref
    from node.gc_policy import SurvivorFreezer, tune_gc

    class Thing:
        pass

    tune_gc(10_000)
    freezer = SurvivorFreezer()
"""


def run_python(code: str) -> str:
    source = textwrap.dedent(PRELUDE) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_survivors_of_a_collection_leave_the_collectors_sight_and_garbage_cycles_are_still_collected():
    out = run_python("""
        freezer.install()
        kept = Thing()
        cycle = Thing()
        cycle.me = cycle  # garbage once dropped: only the collector can free it
        del cycle
        frozen_before = gc.get_freeze_count()
        found = gc.collect(0)
        in_sight = any(o is kept for o in gc.get_objects())
        print(found >= 1, gc.get_freeze_count() > frozen_before, in_sight)
    """)
    assert out == "True True False"


def test_without_it_survivors_stay_in_sight():
    out = run_python("""
        kept = Thing()
        gc.collect(0)
        print(any(o is kept for o in gc.get_objects()), gc.get_freeze_count())
    """)
    assert out == "True 0"


def test_a_frozen_object_is_still_freed_when_dropped():
    out = run_python("""
        freezer.install()
        kept = Thing()
        gc.collect(0)
        ref = weakref.ref(kept)
        del kept
        print(ref() is None)
    """)
    assert out == "True"


def test_a_cycle_that_became_garbage_while_frozen_is_freed_by_the_next_refreeze():
    out = run_python("""
        freezer.install()
        cycle = Thing()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        gc.collect(0)  # alive here: frozen with the other survivors
        del cycle
        gc.collect()  # a full collection does not see frozen objects
        held_while_frozen = ref() is not None
        found = freezer.refreeze()
        kept = Thing()
        gc.collect(0)
        print(held_while_frozen, ref() is None, found >= 1, freezer.status()["freed"] == found,
              freezer.status()["rounds"], freezer.status()["frozen"] > 0, any(o is kept for o in gc.get_objects()))
    """)
    assert out == "True True True True 1 True False"  # and freezing goes on after a round


def test_refreezing_is_skipped_where_the_freezer_is_not_installed():
    # nodes run inside a test process never freeze its heap: the periodic task returns at once
    freezer = SurvivorFreezer()
    asyncio.run(asyncio.wait_for(freezer.run(0.01), 1))
    assert freezer.status()["rounds"] == 0


def test_the_node_config_freezes_survivors_and_refreezes_every_ten_minutes_by_default():
    config = NodeConfig()
    assert config.gc_freeze_survivors is True
    assert config.gc_refreeze_s == 600
    assert config.gc_gen0_threshold == 10_000


def test_while_refreezing_each_commit_freezes_that_heights_survivors_without_a_collection():
    out = run_python("""
        gc.disable()  # only the explicit calls below
        kept = Thing()
        freezer.freeze_height()  # not installed: nothing happens
        before = any(o is kept for o in gc.get_objects())
        freezer.install()
        freezer.refreezes = True  # as while its refreeze task runs
        counts = []
        gc.callbacks.append(lambda phase, info: counts.append(info["generation"]) if phase == "stop" else None)
        frozen_before = gc.get_freeze_count()
        freezer.freeze_height()
        young = gc.get_count()[0]
        print(before, counts, any(o is kept for o in gc.get_objects()), gc.get_freeze_count() > frozen_before, young)
    """)
    assert out == "True [] False True 0"  # no collection walked it, and the young count starts again


def test_a_cycle_that_died_within_a_height_is_freed_by_the_next_refreeze():
    out = run_python("""
        freezer.install()
        freezer.refreezes = True
        cycle = Thing()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        del cycle  # garbage before the height ends: frozen with the rest, not walked
        freezer.freeze_height()
        gc.collect()
        held = ref() is not None
        found = freezer.refreeze()
        print(held, ref() is None, found >= 1)
    """)
    assert out == "True True True"


def test_after_an_error_the_next_commit_collects_the_young_objects_before_freezing_them():
    """Error handling makes cycles (a malformed request's, inside the web framework): frozen with the rest, they
    stayed until the next refreeze round, minutes later.  Only the commit after an error pays for a walk."""
    out = run_python("""
        freezer.install()
        freezer.refreezes = True
        collections = []
        gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "stop" else None)
        held = []
        for error in (False, True, False):
            cycle = Thing()
            cycle.me = cycle
            ref = weakref.ref(cycle)
            del cycle
            if error:
                freezer.expect_garbage()
            freezer.freeze_height()
            held.append(ref() is not None)
        print(collections, held)
    """)
    assert out == "[0] [True, False, True]"  # one collection, at the commit after the error


def test_an_error_answer_and_a_peer_refusal_say_garbage_is_to_be_collected():
    from node.api.app import error_response
    from node.gc_policy import SURVIVOR_FREEZER
    from node.p2p.switch import Switch

    SURVIVOR_FREEZER._collect_next = False
    assert error_response(400, "bad-request", "no").status_code == 400
    assert SURVIVOR_FREEZER._collect_next
    SURVIVOR_FREEZER._collect_next = False
    switch = Switch.__new__(Switch)  # only its event counting
    switch.events, switch._logged = collections.Counter(), {}
    switch.note("refused", "bad-auth", "peer", "detail")
    assert SURVIVOR_FREEZER._collect_next
    SURVIVOR_FREEZER._collect_next = False


def test_without_refreeze_rounds_each_commit_collects_the_young_objects_so_a_dead_cycle_is_freed():
    out = run_python("""
        import asyncio
        freezer.install()
        asyncio.run(freezer.run(0))  # gc_refreeze_s = 0: no rounds
        cycle = Thing()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        del cycle
        kept = Thing()
        freezer.freeze_height()
        print(freezer.refreezes, ref() is None, any(o is kept for o in gc.get_objects()))
    """)
    assert out == "False True False"  # collected, and the survivor frozen after the collection


def test_the_refreeze_task_says_it_runs_while_it_runs():
    async def scenario():
        freezer = SurvivorFreezer()
        freezer.active = True  # as installed, without touching this process's collector
        task = asyncio.create_task(freezer.run(3600))
        await asyncio.sleep(0)
        running = freezer.refreezes
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return running, freezer.refreezes

    assert asyncio.run(scenario()) == (True, False)


def test_an_installed_freezer_refreezes_on_its_own_and_retries_a_round_another_thread_kept_from_running():
    out = run_python("""
        import asyncio
        import node.gc_policy as policy

        policy.REFREEZE_RETRY_S = 0.01
        first_wait = iter([0.001])  # the first round comes at once, a later one only after 10 s
        policy.random.uniform = lambda low, high: next(first_wait, 1.0)
        freezer.install()
        real_collect, skipped = gc.collect, []

        def busy_once(*args):  # the first full collection finds another thread's collection under way
            if not skipped:
                skipped.append(True)
                return 0  # what gc.collect returns then, without collecting
            return real_collect(*args)

        cycle = Thing()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        gc.collect(0)  # frozen while alive
        del cycle
        gc.collect = busy_once

        async def main():
            task = asyncio.create_task(freezer.run(10))
            for _ in range(200):
                await asyncio.sleep(0.01)
                if freezer.rounds:
                    break
            freezer.uninstall()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())
        print(skipped, freezer.rounds, ref() is None, freezer.freed >= 1, freezer.interval_s)
    """)
    assert out == "[True] 1 True True 10"  # the round freed a cycle: the next one comes after gc_refreeze_s again


def test_refreeze_rounds_that_find_nothing_come_less_and_less_often_and_one_that_finds_a_cycle_resets_it():
    from node.gc_policy import REFREEZE_MAX_FACTOR, next_refreeze_s

    interval, seen = 600.0, []
    for _ in range(6):
        interval = next_refreeze_s(600, interval, freed=0)
        seen.append(interval)
    assert seen == [1200, 2400, 4800, 4800, 4800, 4800] and REFREEZE_MAX_FACTOR * 600 == 4800
    assert next_refreeze_s(600, 4800, freed=3) == 600
