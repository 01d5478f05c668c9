"""The relay's I/O: consensus messages from peers, and the round-state exchange with every peer.

The relay (``node.consensus.relay``, sans-IO) decides what the driver gets
and what is re-flooded; this module feeds it what arrives on the peer
channels (``consensus``, ``round-state``), sends this node's round status to
every peer every ``STATUS_INTERVAL_MS`` and answers a peer's status with what
it lacks, floods what the relay says to flood, and hands the driver's actions
to the node.  A peer heights ahead wakes block sync.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from collections.abc import Callable
from typing import cast

from node.consensus.driver import ConsensusDriver
from node.consensus.relay import STATUS_INTERVAL_MS, Relay, Verdict
from node.consensus.round_status import RoundStatus
from node.encoding import DecodeError
from node.ledger.store import Store
from node.p2p.peer_link import PeerLink
from node.p2p.reactor import PeerReactor
from node.p2p.wire import ConsensusMessage, encode_consensus_message
from node.types.commit import Commit


def decided_block(store: Store, height: int) -> tuple[bytes, Commit] | None:
    """The committed block at ``height`` with its certificate (what the relay hands a peer still deciding it)."""
    block_bytes, commit = store.get_block_bytes(height), store.get_commit(height)
    return None if block_bytes is None or commit is None else (block_bytes, commit)


class ConsensusIO:
    """Between the peers and the relay, for one node."""

    def __init__(self, relay: Relay, driver: ConsensusDriver, peers: PeerReactor, *,
                 run_actions: Callable[[list], None],
                 failed: Callable[[], bool], peers_ahead: Callable[[], None],
                 arrived: Callable[[], None] = lambda: None):
        """``run_actions`` carries out the driver's actions (the node's action interpreter), ``failed`` says
        the node has stopped on an error, ``peers_ahead`` wakes block sync, ``arrived`` is told when a batch
        brought a message the driver kept or buffered (a wait between heights looks again)."""
        self.relay = relay
        self.driver = driver
        self.peers = peers
        self._run_actions = run_actions
        self._failed = failed
        self._peers_ahead = peers_ahead
        self._arrived = arrived
        self.received: collections.Counter[str] = collections.Counter()
        """Consensus messages from peers by what became of them: accepted, duplicate, buffered, stale, dropped."""

    def start_height(self, height: int) -> None:
        """Start consensus at ``height``; messages the relay buffered for it are offered again."""
        actions, reoffered = self.relay.start_height(height)
        self._run_actions(actions)
        for payload, received in reoffered:
            encoded, source = cast(tuple[bytes, PeerLink | None], payload)  # what receive_consensus buffered
            self._after_receive(encoded, received, source)

    def _after_receive(self, encoded, received, source: PeerLink | None) -> None:
        if received.flood and encoded is not None:
            self.peers.broadcast_consensus(encoded, skip=source)
        if received.actions:
            self._run_actions(received.actions)

    def receive_consensus(self, messages: list[tuple[ConsensusMessage | DecodeError, bytes]],
                          source: PeerLink | None = None) -> dict:
        """Messages from a peer (``source``), each with its framed bytes: the relay decides what the driver
        gets and what is re-flooded (only what the driver kept, with the bytes it arrived in, to every peer but
        ``source``, which has it: on four validators that sent each message 9 times instead of 12)."""
        counts = {verdict: 0 for verdict in Verdict}
        malformed = 0
        for message, encoded in messages:
            if isinstance(message, DecodeError):
                malformed += 1
                continue
            if self._failed():
                break
            received = self.relay.receive(message, hashlib.sha256(encoded).digest(), (encoded, source))
            counts[received.verdict] += 1
            if received.verdict is Verdict.BUFFERED and message.height > self.driver.height + 1:
                self._peers_ahead()  # peers are heights ahead: block sync gets there faster
            self._after_receive(encoded, received, source)
        result = {"accepted": counts[Verdict.KEPT], "duplicate": counts[Verdict.DUPLICATE],
                  "buffered": counts[Verdict.BUFFERED], "stale": counts[Verdict.STALE],
                  "dropped": counts[Verdict.DROPPED] + malformed}
        self.received.update(result)
        if result["accepted"] or result["buffered"]:
            self._arrived()
        return result

    def answer_round_status(self, status: RoundStatus) -> list[bytes]:
        """A peer's round status: the encoded messages it lacks of what this node holds."""
        if self.relay.peer_is_ahead(status):
            self._peers_ahead()
        return [encode_consensus_message(m) for m in self.relay.answer(status)]

    async def status_loop(self) -> None:
        """Send this node's round status to every connected peer every ``STATUS_INTERVAL_MS``; each answers
        with what this node lacks (on the consensus channel), and sends its own status likewise."""
        period = STATUS_INTERVAL_MS / 1000
        while True:
            await asyncio.sleep(period)
            if self._failed() or not self.driver.started:
                continue
            self.peers.broadcast_round_status(self.relay.status().encode())
