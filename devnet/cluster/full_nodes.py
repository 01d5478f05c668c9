"""Full nodes for a local network: a home that follows the chain without a key in genesis.

``add_full_node`` writes the home (its own fresh key, the network's genesis,
every validator as a persistent peer, ports of its own, or on a ``--netns``
devnet a namespace and address of its own on the bridge), adds it to
``network.json`` with the role ``full``, and leaves starting it to the
caller.  Validators of a devnet accept it because a devnet's nodes allow any
peer that proves its key (``allowed_peers = ["*"]``, loopback only).
"""

from __future__ import annotations

from pathlib import Path

from devnet.cluster import netns
from devnet.cluster.homes import DEVNET_SNAPSHOT_INTERVAL
from devnet.cluster.spec import (
    LOG_FILE,
    DevnetError,
    NodeSpec,
    add_to_network_file,
    free_ports,
    is_loopback,
    load_network,
    network_info,
)
from genesis.document import load_genesis
from node.config import GENESIS_FILE, NodeConfig
from node.home import init_home
from node.p2p.secret import node_id_of

FULL_NODE_PREFIX = "full-"


def next_full_node_name(specs: list[NodeSpec]) -> str:
    taken = {s.name for s in specs}
    return next(f"{FULL_NODE_PREFIX}{i}" for i in range(len(taken) + 1) if f"{FULL_NODE_PREFIX}{i}" not in taken)


def add_full_node(base: Path, name: str | None = None, overrides: dict[str, object] | None = None,
                  state_sync: bool = False) -> NodeSpec:
    """Write a full node's home under ``base`` and add it to ``network.json``; returns its spec (not started)."""
    base = Path(base).resolve()
    info = network_info(base)
    if info.get("multi_host"):
        raise DevnetError(f"{base} was written for several machines: run `ledger-node init --full-node` on the "
                          f"machine that will run the full node")
    specs = load_network(base)
    validators = [s for s in specs if s.role == "validator"]
    layout = netns.load_layout(base)
    if not validators or (layout is None and not all(is_loopback(s.host) for s in validators)):
        raise DevnetError("add-node works on devnets made by `ledger-devnet up` (loopback or --netns)")
    name = name or next_full_node_name(specs)
    if any(s.name == name for s in specs) or "/" in name or name.startswith(".") or len(name) > 40:
        raise DevnetError(f"cannot name the new node {name!r}: taken or not a folder name")
    genesis = load_genesis(base / GENESIS_FILE)
    keys = {v.name: v.public_key for v in genesis.validators}
    peers = tuple(f"{node_id_of(keys[s.name])}@{s.host}:{s.p2p_port}" for s in validators if s.name in keys)
    if len(peers) != len(validators):
        raise DevnetError(f"the genesis in {base} does not name every validator of network.json")
    if layout is not None:  # its own namespace and address on the devnet's bridge, the devnet's ports
        entry = netns.add_node(base, name)
        spec = NodeSpec(name, base / name, entry.address, validators[0].port, validators[0].p2p_port, role="full")
    else:
        taken = {p for s in specs for p in (s.port, s.p2p_port)}
        port, p2p_port = [p for p in free_ports(len(taken) + 2) if p not in taken][:2]
        spec = NodeSpec(name, base / name, validators[0].host, port, p2p_port, role="full")
    port, p2p_port = spec.port, spec.p2p_port
    config = NodeConfig(name=name, host=spec.host, port=port, p2p_port=p2p_port, peers=peers,
                        log_file=str(spec.home / LOG_FILE), snapshot_interval=DEVNET_SNAPSHOT_INTERVAL,
                        ).with_overrides(dict(overrides or {}))
    init_home(spec.home, base / GENESIS_FILE, None, config, state_sync=state_sync)
    add_to_network_file(base, spec)
    return spec

