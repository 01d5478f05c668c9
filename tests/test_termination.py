"""SIGTERM as a clean exit for the commands that start nodes (``devnet.cluster.termination``)."""

from __future__ import annotations

import os
import signal

import pytest

from devnet.cluster.termination import exits_on_terminate, terminate_deferred


def test_sigterm_raises_a_clean_exit_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    reached = []
    with pytest.raises(SystemExit) as exit_info:
        with exits_on_terminate():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between two bytecodes of this thread
                reached.append(1)
    assert exit_info.value.code == 128 + signal.SIGTERM and len(reached) < 1000
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_within_a_deferred_block_takes_effect_at_its_end():
    order: list[str] = []
    with pytest.raises(SystemExit) as exit_info:
        with exits_on_terminate():
            with terminate_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
                order.append("started")
                with terminate_deferred():  # nested: still waits for the outer block
                    pass
                order.append("recorded")
            order.append("after")  # never: the exit comes as the block ends
    assert exit_info.value.code == 128 + signal.SIGTERM and order == ["started", "recorded"]
    with terminate_deferred():  # nothing pending any more
        pass
