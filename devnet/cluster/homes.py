"""Node homes for a network: the one writer of a network's homes, its ``genesis.json`` and ``network.json``.

``write_homes`` writes the genesis once (each address bech32-encoded once,
fast at any genesis size), makes the first home with ``node.home.init_home``
(so it holds whatever a node expects) and compacts its store, and makes
every other home a copy of it with its own key and config: one genesis parse
and one height-0 store, not one per node.  ``write_network`` (loopback, for
``ledger-devnet up``, the bench, the drill and the tests) and
``write_multi_host_network`` (``ledger-devnet init``) choose the nodes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from devnet.cluster.spec import LOG_FILE, NodeSpec, local_specs, multi_host_specs, write_network_file
from genesis.document import Genesis, genesis_to_json
from node.config import DATA_DIR, GENESIS_FILE, KEY_FILE, NodeConfig, save_config
from node.crypto import derive_public_key, encode_address
from node.home import init_home, write_key_file
from node.p2p.secret import node_id_of

DEVNET_SNAPSHOT_INTERVAL = 100
"""A devnet snapshots its state more often than the default, so state sync has something to fetch soon."""


def write_genesis_json(genesis: Genesis, path: Path) -> None:
    """The genesis file as ``genesis.document.dump_genesis`` writes it, fast: each address is encoded once,
    not once per allocation (``genesis`` comes validated from ``genesis.build``; ``init_home`` reads it back)."""
    head = genesis_to_json(Genesis(genesis.chain_id, genesis.genesis_time_ms, genesis.validators, (),
                                   genesis.params))
    names: dict[bytes, str] = {}
    parts = []
    for a in genesis.allocations:
        text = names.get(a.address)
        if text is None:
            text = names[a.address] = encode_address(a.address)
        parts.append(f'    {{\n      "address": "{text}",\n      "amount": {a.amount}\n    }}')
    head["allocations"] = "@@ALLOCATIONS@@"
    allocations = "[\n" + ",\n".join(parts) + "\n  ]" if parts else "[]"
    text = json.dumps(head, indent=2).replace('"@@ALLOCATIONS@@"', allocations)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def compact_store(path: Path) -> None:
    """Compact a freshly bulk-written LevelDB, so the nodes do not all start by compacting the same data."""
    import plyvel

    db = plyvel.DB(str(path))
    try:
        db.compact_range()
    finally:
        db.close()


def copy_home(source: Path, home: Path, private_key: bytes, config: NodeConfig) -> None:
    """A new home at ``home``: ``source``'s genesis and height-0 store (``source`` must be stopped and must
    never have run), with its own key and config."""
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(source, home)
    write_key_file(home / KEY_FILE, private_key)
    save_config(home, config)


def peer_address(spec: NodeSpec, private_key: bytes) -> str:
    """How other nodes name ``spec`` in their ``peers``: ``NODEID@host:p2p_port``."""
    return f"{node_id_of(derive_public_key(private_key))}@{spec.host}:{spec.p2p_port}"


def write_homes(base: Path, genesis: Genesis, validator_keys: Mapping[str, bytes], specs: list[NodeSpec],
                config_overrides: Mapping[str, object] | None = None, *,
                peers: Mapping[str, tuple[str, ...]] | None = None, multi_host: bool = False) -> list[NodeSpec]:
    """Homes for ``specs`` (one per validator key, by name), ``genesis.json`` and ``network.json`` in ``base``.

    Each node binds to its spec's host and ports and knows the others at their
    peer addresses (``NODEID@host:p2p_port``, a full mesh), unless ``peers``
    names a node's peer addresses (the drill's proxy).  An existing home of the
    same name is replaced.
    """
    base = Path(base).resolve()
    base.mkdir(parents=True, exist_ok=True)
    genesis_path = base / GENESIS_FILE
    write_genesis_json(genesis, genesis_path)
    configs = {}
    for spec in specs:
        links = tuple(peers[spec.name]) if peers is not None and spec.name in peers else \
            tuple(peer_address(other, validator_keys[other.name]) for other in specs if other.name != spec.name)
        # a home meant for another machine must not name a path of this one: it logs to stderr there
        log_file = "" if multi_host else str(spec.home / LOG_FILE)
        # a local network admits any node that proves its key (full nodes join with `ledger-devnet add-node`)
        configs[spec.name] = NodeConfig(name=spec.name, host=spec.host, port=spec.port, p2p_port=spec.p2p_port,
                                        peers=links, allowed_peers=() if multi_host else ("*",),
                                        log_file=log_file, snapshot_interval=DEVNET_SNAPSHOT_INTERVAL,
                                        ).with_overrides(dict(config_overrides or {}))
        if spec.home.exists():
            shutil.rmtree(spec.home)
    first = specs[0]
    init_home(first.home, genesis_path, validator_keys[first.name], configs[first.name], force=True)
    compact_store(first.home / DATA_DIR)
    for spec in specs[1:]:
        copy_home(first.home, spec.home, validator_keys[spec.name], configs[spec.name])
    write_network_file(base, genesis.chain_id, specs, multi_host)
    return specs


def write_network(base: Path, genesis: Genesis, validator_keys: Mapping[str, bytes], host: str = "127.0.0.1",
                  config_overrides: Mapping[str, object] | None = None, *, base_port: int | None = None,
                  peers: Mapping[str, tuple[str, ...]] | None = None) -> list[NodeSpec]:
    """One home per validator under ``base``, on loopback, peers wired as a full mesh (or as ``peers`` says).

    Ports are any free ones, or ``base_port`` and up when those are all free.
    """
    specs = local_specs(base, list(validator_keys), host, base_port)
    return write_homes(base, genesis, validator_keys, specs, config_overrides, peers=peers)


def write_multi_host_network(base: Path, genesis: Genesis, validator_keys: Mapping[str, bytes], hosts: list[str],
                             base_port: int = 26657,
                             config_overrides: Mapping[str, object] | None = None) -> list[NodeSpec]:
    """One home per validator for a network spread over ``hosts`` (validator i on host i mod len(hosts)).

    Each node binds to its own host and knows the others as ``http://host:port``.
    Nothing is started: copy each home to its machine and run
    ``ledger-node start --home HOME`` there.
    """
    specs = multi_host_specs(base, list(validator_keys), hosts, base_port)
    return write_homes(base, genesis, validator_keys, specs, config_overrides, multi_host=True)
