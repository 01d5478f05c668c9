"""A node's home directory: config, genesis, validator key and data.

    HOME/config.toml          NodeConfig (ledger-node start reads it)
    HOME/genesis.json         the genesis document this node trusts
    HOME/validator_key.json   the node's secp256k1 key (mode 0600)
    HOME/data/                the LevelDB store
    HOME/signer_state.log     what this key has signed (never sign twice)
    HOME/consensus.wal        consensus messages of the current height (earlier heights' are ignored)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from genesis.document import Genesis, encode_genesis, genesis_hash, load_genesis, validator_set_of
from node.config import CONFIG_FILE, DATA_DIR, GENESIS_FILE, KEY_FILE, NodeConfig, save_config
from node.crypto import address_hash, address_of, check_private_key, derive_public_key, generate_private_key
from node.ledger.store import Store


class HomeError(ValueError):
    code = "bad-home"


@dataclass(frozen=True)
class NodeKey:
    """The node's signing key and what derives from it."""

    private_key: bytes
    """32-byte secp256k1 scalar."""

    @property
    def public_key(self) -> bytes:
        return derive_public_key(self.private_key)

    @property
    def address(self) -> bytes:
        return address_hash(self.public_key)


def write_key_file(path: Path, private_key: bytes) -> None:
    check_private_key(private_key)
    public_key = derive_public_key(private_key)
    body = json.dumps({"private_key": private_key.hex(), "public_key": public_key.hex(),
                       "address": address_of(public_key)}, indent=2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body + "\n")
    os.chmod(path, 0o600)


def load_key_file(path: Path) -> NodeKey:
    try:
        obj = json.loads(Path(path).read_text())
        key = bytes.fromhex(obj["private_key"])
        check_private_key(key)
    except FileNotFoundError as exc:
        raise HomeError(f"no key file at {path}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise HomeError(f"{path} is not a valid key file: {exc}") from exc
    return NodeKey(key)


def genesis_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def init_home(home: Path, genesis_path: Path, private_key: bytes | None = None,
              config: NodeConfig | None = None, force: bool = False,
              from_snapshot: Path | None = None, state_sync: bool = False) -> tuple[NodeConfig, Genesis, NodeKey]:
    """Create a node home holding its LevelDB at height 0 with the genesis allocations, or at the height of the
    snapshot file ``from_snapshot`` once it checks out from the genesis (``node.snapshot_file``; a
    ``SnapshotError`` leaves no store behind); with ``state_sync`` the store is left empty and the node fetches a
    snapshot from its peers when it starts (``node.state_sync``)."""
    home = Path(home)
    genesis = load_genesis(genesis_path)
    if (home / CONFIG_FILE).exists() and not force:
        raise HomeError(f"{home} already holds a node (use --force to overwrite)")
    if force and (home / DATA_DIR).exists():
        shutil.rmtree(home / DATA_DIR)
    home.mkdir(parents=True, exist_ok=True)
    raw = Path(genesis_path).read_bytes()
    (home / GENESIS_FILE).write_bytes(raw)
    key = NodeKey(private_key if private_key is not None else generate_private_key())
    write_key_file(home / KEY_FILE, key.private_key)
    for stale in ("signer_state.log", "consensus.wal"):
        if force and (home / stale).exists():
            (home / stale).unlink()
    config = config or NodeConfig()
    if state_sync:
        config = replace(config, state_sync=True)
    save_config(home, config)
    if state_sync:
        return config, genesis, key
    store = Store.open(str(home / DATA_DIR))
    try:
        if from_snapshot is not None:
            from node.snapshot_file import import_snapshot
            import_snapshot(Path(from_snapshot), store, genesis.chain_id, genesis_hash(genesis),
                            encode_genesis(genesis), validator_set_of(genesis))
        else:
            store.initialize_genesis(genesis.chain_id, genesis_hash(genesis),
                                     [(a.address, a.amount) for a in genesis.allocations], encode_genesis(genesis),
                                     validators=validator_set_of(genesis))
        from node.crypto import sha256
        store.put_meta("genesis_file_sha256", sha256(raw))
    except BaseException:
        store.close()
        if from_snapshot is not None:
            shutil.rmtree(home / DATA_DIR, ignore_errors=True)
        raise
    store.close()
    return config, genesis, key
