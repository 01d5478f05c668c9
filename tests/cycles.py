"""What a call leaves in reference cycles: garbage only a full collection frees, which a node frozen between gc
refreeze rounds would hold for minutes (``node.gc_policy``)."""

from __future__ import annotations

import gc
from collections.abc import Callable


def cycles_left_by(call: Callable[[], object], ignore: Callable[[object], bool] = lambda obj: False) -> list[str]:
    """The ``module.qualname`` of every object ``call`` left in a reference cycle, but those ``ignore`` names
    (a test client's own, say)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        call()
        gc.collect()
        return [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage if not ignore(o)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
