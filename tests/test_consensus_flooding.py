"""What a node sends on of the consensus messages its peers send it: the peer layer's side of the relay's rule.

The relay says which messages to re-flood (those the driver kept); the node sends them to every connected
peer but the one they came from, which has them (on four validators, 9 sends a message instead of 12).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from node.consensus.messages import VoteType
from node.consensus.relay import Relay
from node.crypto import sha256
from node.p2p.channels import CONSENSUS
from node.p2p.consensus_io import ConsensusIO
from node.p2p.reactor import PeerReactor
from node.p2p.wire import encode_consensus_batch, encode_consensus_message
from tests.consensus.consensus_helpers import Harness, value

VID = sha256(value("block"))


def link(name: str) -> Any:
    """A connected peer link that records what it is sent on the consensus channel."""
    sent: list[bytes] = []
    return SimpleNamespace(name=name, up=True, sent=sent,
                           send=lambda channel, item: sent.append(item) if channel == CONSENSUS else None)


def node_with_peers(*names: str) -> tuple[Harness, ConsensusIO, PeerReactor, dict[str, Any]]:
    """A listening driver and its relay behind the node's own reactor and consensus I/O, with peers ``names``."""
    h = Harness([1, 1, 1, 1], me=None)
    links = {name: link(name) for name in names}
    reactor = PeerReactor(SimpleNamespace(links=links), serve_block=lambda height: None,  # type: ignore[arg-type]
                          request_timeout_s=1.0)
    io = ConsensusIO(Relay(h.driver, lambda height: None), h.driver, reactor, run_actions=lambda actions: None,
                     failed=lambda: False, peers_ahead=lambda: None)
    reactor.on_consensus = io.receive_consensus
    return h, io, reactor, links


def test_a_kept_message_goes_to_every_peer_but_the_one_it_came_from_once():
    h, io, reactor, links = node_with_peers("a", "b", "c")
    io.start_height(1)
    vote = encode_consensus_message(h.vote(h.addresses[0], VoteType.PREVOTE, 1, 0, VID))
    reactor.deliver(links["a"], CONSENSUS, encode_consensus_batch([vote]))
    assert {name: peer.sent for name, peer in links.items()} == {"a": [], "b": [vote], "c": [vote]}
    reactor.deliver(links["b"], CONSENSUS, encode_consensus_batch([vote]))  # the same bytes again: kept already
    assert {name: len(peer.sent) for name, peer in links.items()} == {"a": 0, "b": 1, "c": 1}


def test_a_message_buffered_for_a_later_height_is_sent_on_when_kept_but_not_back_to_its_sender():
    h, io, reactor, links = node_with_peers("a", "b", "c")
    io.start_height(1)
    later = encode_consensus_message(h.vote(h.addresses[1], VoteType.PREVOTE, 2, 0, VID))
    reactor.deliver(links["b"], CONSENSUS, encode_consensus_batch([later]))
    assert all(not peer.sent for peer in links.values())  # buffered, not kept yet
    io.start_height(2)
    assert {name: peer.sent for name, peer in links.items()} == {"a": [later], "b": [], "c": [later]}
