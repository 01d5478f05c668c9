"""SIGTERM as a clean exit for the commands that start nodes (``ledger-devnet bench``, ``drill``).

``kill PID`` or ``timeout`` on such a command used to end it on the spot and
leave the validators it started running.  Inside ``exits_on_terminate`` the
signal raises ``SystemExit(128 + SIGTERM)`` instead, so the command's own
clean-up (``finally``: stop the nodes, remove namespaces) runs as at its end;
later SIGTERMs are ignored while it does.  A process start and the record of
it (a pid in a list the clean-up reads) go inside ``terminate_deferred``: a
SIGTERM that arrives between the two waits for the block's end, so no node
is started without the clean-up knowing it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_state = {"deferring": 0, "pending": 0}
"""How many ``terminate_deferred`` blocks are open, and the signal that arrived meanwhile (0: none)."""


def _on_terminate(signum: int, _frame) -> None:
    if _state["deferring"]:
        _state["pending"] = signum
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def exits_on_terminate() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` within the block (the previous handler after it); outside the main
    thread, where Python cannot set a handler, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def terminate_deferred() -> Iterator[None]:
    """A SIGTERM that arrives within the block takes effect at its end."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        signum = _state["pending"]
        if signum and not _state["deferring"]:
            _state["pending"] = 0
            _on_terminate(signum, None)
