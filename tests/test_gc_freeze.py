"""A node freezes what survives each garbage collection (node.memory.freeze_survivors, node.cli.tune_gc).

Each case runs in a fresh interpreter: freezing is process-wide and would
otherwise reach into the test runner's own heap.
"""

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_survivors_of_a_collection_leave_the_collectors_sight_and_garbage_cycles_are_still_collected():
    out = run_python("""
        import gc
        from node.cli import tune_gc
        tune_gc(10_000, freeze_survivors=True)

        class Node:
            pass

        kept = Node()
        cycle = Node()
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
        import gc
        from node.cli import tune_gc
        tune_gc(10_000, freeze_survivors=False)

        class Node:
            pass

        kept = Node()
        gc.collect(0)
        print(any(o is kept for o in gc.get_objects()), gc.get_freeze_count())
    """)
    assert out == "True 0"


def test_a_frozen_object_is_still_freed_when_dropped():
    out = run_python("""
        import gc, weakref
        from node.cli import tune_gc
        tune_gc(10_000, freeze_survivors=True)

        class Node:
            pass

        kept = Node()
        gc.collect(0)
        ref = weakref.ref(kept)
        del kept
        print(ref() is None)
    """)
    assert out == "True"


def test_the_node_config_freezes_survivors_by_default():
    from node.config import NodeConfig

    assert NodeConfig().gc_freeze_survivors is True
    assert NodeConfig().gc_gen0_threshold == 10_000
