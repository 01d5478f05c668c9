"""Building a node's peer transport from its configuration: the switch on ``p2p_port`` and its reactor.

Shared by the running node (``node.runtime``) and by state sync, which runs
the same transport before the node starts (``node.state_sync``).
"""

from __future__ import annotations

from collections.abc import Callable

from node.config import NodeConfig
from node.consensus.round_status import RELAY_PROTOCOL_VERSION
from node.crypto import SigningKey
from node.p2p.channels import channel_table
from node.p2p.reactor import PeerReactor
from node.p2p.secret import Hello, node_id_of
from node.p2p.switch import LinkSettings, Switch, parse_peer_address


def build_reactor(config: NodeConfig, private_key: bytes, chain_id: str, genesis_hash: bytes,
                  validator_keys: Callable[[], list[bytes]],
                  serve_block: Callable[[int], tuple[bytes, bytes] | None]) -> PeerReactor:
    """A switch that admits the validators (``validator_keys()``, asked at each handshake), the configured peers
    and ``allowed_peers``, and the reactor between it and the node (``serve_block``: a committed block and its
    certificate, encoded)."""
    peers = [parse_peer_address(text) for text in config.peers]
    peer_ids = {p.node_id for p in peers}
    allowed = peer_ids | {i.lower() for i in config.allowed_peers}
    open_to_all = "*" in allowed

    def validator_ids() -> set[str]:
        return {node_id_of(key) for key in validator_keys()}
    switch = Switch(
        key=SigningKey(private_key),
        hello=Hello(chain_id, genesis_hash, RELAY_PROTOCOL_VERSION, config.name),
        host=config.host, port=config.p2p_port, peers=peers,
        allowed=lambda node_id: open_to_all or node_id in allowed or node_id in validator_ids(),
        specs=channel_table(config.gossip_batch_txs, config.gossip_flush_ms, config.gossip_queue_max),
        settings=LinkSettings(ping_interval_s=config.p2p_ping_ms / 1000,
                              idle_timeout_s=config.p2p_idle_timeout_ms / 1000,
                              send_timeout_s=config.p2p_send_timeout_ms / 1000,
                              delay_s=config.p2p_delay_ms / 1000, jitter_s=config.p2p_jitter_ms / 1000),
        max_inbound=config.p2p_max_inbound,
        reserved=lambda node_id: node_id in peer_ids or node_id in validator_ids())
    return PeerReactor(switch, serve_block=serve_block, request_timeout_s=config.peer_timeout_ms / 1000)
