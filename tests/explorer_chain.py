"""The chain the explorer tests look at (``test_explorer``, ``test_explorer_browser``): one validator that has
committed one payment alice -> bob."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netutil import Network, running_network


@contextmanager
def running_paid_chain(base: Path, amount: int) -> Iterator[Network]:
    """A running one-validator network under ``base`` (``tests.netutil``) that has committed alice's payment of
    ``amount`` to bob: ``net.tx`` is that transaction, ``net.tx_height`` the height of its block."""
    with running_network(base, validators=1, overrides={"log_level": "INFO"}) as net:
        net.wait_height(1)
        tx = net.transfer("alice", net.address("bob"), amount)
        committed = net.submit(tx, wait="commit")
        assert committed.status_code == 200, committed.text
        net.tx = tx
        net.tx_height = committed.json()["height"]
        yield net
