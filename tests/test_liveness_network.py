"""Liveness with real processes: one silent validator (f = 1) while an honest one comes back from a pause.

The stall this guards against: validator-2 is paused long enough to fall
several heights behind, validator-3 goes silent, validator-2 resumes.  Three
honest validators are up, so the chain must move again; before the relay
exchanged round state, the messages validator-2 missed were never offered
again and the chain stopped until validator-3 came back.
"""

from __future__ import annotations

import signal

import pytest

from devnet.cluster import signal_node
from tests.netutil import running_network

pytestmark = pytest.mark.processes


def _heights(net, indexes):
    return [(net.status(i) or {}).get("height", -1) for i in indexes]


def test_lagging_validator_returns_while_another_is_silent(tmp_path):
    with running_network(tmp_path) as net:
        net.wait_height(2)
        assert signal_node(net.specs[2], signal.SIGSTOP)
        try:
            paused_at = max(_heights(net, [0, 1, 3]))
            net.wait_height(paused_at + 4, indexes=[0, 1, 3], timeout_s=60)
            assert signal_node(net.specs[3], signal.SIGSTOP)
            stalled_at = max(_heights(net, [0, 1]))
            assert signal_node(net.specs[2], signal.SIGCONT)
            # Three honest validators hold 3/4 of the power: new heights must follow.
            net.wait_height(stalled_at + 3, indexes=[0, 1, 2], timeout_s=60)
            heights = _heights(net, [0, 1, 2])
            assert min(heights) >= stalled_at + 3, heights
        finally:
            signal_node(net.specs[2], signal.SIGCONT)
            signal_node(net.specs[3], signal.SIGCONT)
        # validator-3 rejoins and catches up with the others.
        top = max(_heights(net, [0, 1, 2]))
        net.wait_height(top, indexes=[3], timeout_s=60)
