"""The genesis a wallet trusts: fetched once, pinned by its hash, checked every time after.

The pin (chain id and genesis hash) lives in the wallet file.  A copy of the
genesis document is cached beside it (``NAME.chain.json``) together with the
highest block height the wallet has seen, so later reads can ask for
``?min_height=`` (read-your-writes from any node).  The cache is never
believed on its own: its genesis is re-hashed and must match the pin, and a
genesis fetched from a node must match it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genesis.document import Genesis, genesis_hash, genesis_to_json, parse_genesis, validator_set_of
from genesis.errors import GenesisError
from node.types.validators import Validator, ValidatorSet
from wallet.client import NodeClient
from wallet.keystore import Keystore, write_private_file
from wallet.verify import VerificationError

CHAIN_FILE_SUFFIX = ".chain.json"


def chain_file(wallet_path: Path) -> Path:
    wallet_path = Path(wallet_path)
    stem = wallet_path.name[:-5] if wallet_path.name.endswith(".json") else wallet_path.name
    return wallet_path.with_name(stem + CHAIN_FILE_SUFFIX)


@dataclass(frozen=True)
class TrustedChain:
    """The chain a wallet believes in: its genesis and hence its validator set."""

    genesis: Genesis
    """The pinned genesis."""
    genesis_hash: bytes
    """Its canonical hash (what the pin holds)."""
    validators: ValidatorSet
    """The validators whose signatures make a block final."""

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @classmethod
    def of(cls, genesis: Genesis) -> TrustedChain:
        return cls(genesis, genesis_hash(genesis), validator_set_of(genesis))


def parse_trusted(obj: object, where: str) -> TrustedChain:
    try:
        return TrustedChain.of(parse_genesis(obj))
    except GenesisError as exc:
        raise VerificationError("bad-genesis", f"{where}: not a valid genesis ({exc.code}): {exc.message}") from None


def _read_chain_file(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def write_chain_file(wallet_path: Path, chain: TrustedChain, last_height: int = 0,
                     validator_sets: list | None = None) -> None:
    """Write the chain file; the validator sets already checked on this chain are kept unless given."""
    if validator_sets is None:
        cached = _read_chain_file(chain_file(wallet_path))
        same = cached.get("genesis_hash") == chain.genesis_hash.hex()
        validator_sets = cached.get("validator_sets", []) if same else []
    body = {"genesis_hash": chain.genesis_hash.hex(), "last_height": last_height,
            "genesis": genesis_to_json(chain.genesis), "validator_sets": validator_sets}
    write_private_file(chain_file(wallet_path), json.dumps(body, indent=2) + "\n")


def read_checked_sets(wallet_path: Path, chain: TrustedChain) -> list[tuple[int, ValidatorSet]]:
    """The validator sets this wallet proved (``wallet.validator_walk``), by the height they start at."""
    cached = _read_chain_file(chain_file(wallet_path))
    if cached.get("genesis_hash") != chain.genesis_hash.hex():
        return []
    out = []
    try:
        for entry in cached.get("validator_sets", []):
            out.append((int(entry["height"]), ValidatorSet(
                Validator(str(v["name"]), bytes.fromhex(v["public_key"]), int(v["power"]))
                for v in entry["validators"])))
    except (KeyError, TypeError, ValueError):
        return []  # a damaged cache is walked again from genesis
    return sorted(out, key=lambda item: item[0])


def write_checked_sets(wallet_path: Path, chain: TrustedChain, sets: list[tuple[int, ValidatorSet]]) -> None:
    cached = _read_chain_file(chain_file(wallet_path))
    last = int(cached.get("last_height") or 0) if cached.get("genesis_hash") == chain.genesis_hash.hex() else 0
    body = [{"height": h, "validators": [{"name": v.name, "public_key": v.public_key.hex(), "power": v.power}
                                         for v in vs]} for h, vs in sorted(sets, key=lambda item: item[0])]
    write_chain_file(wallet_path, chain, last, body)


def fetch_genesis(client: NodeClient) -> TrustedChain:
    answer = client.get("/v1/genesis")
    chain = parse_trusted(answer.get("genesis"), f"genesis served by {client.url}")
    claimed = answer.get("genesis_hash")
    if claimed is not None and claimed != chain.genesis_hash.hex():
        raise VerificationError("genesis-mismatch", f"{client.url} claims genesis hash {claimed} but the document it "
                                                    f"served hashes to {chain.genesis_hash.hex()}")
    return chain


def load_trust(store: Keystore, client: NodeClient | None) -> tuple[TrustedChain, bool]:
    """The pinned chain of ``store``; pins the node's genesis on first use. Returns (chain, pinned_just_now)."""
    pin = store.trusted_genesis
    cached = _read_chain_file(chain_file(store.path))
    if pin is not None:
        want = pin.get("genesis_hash")
        if cached.get("genesis_hash") == want and "genesis" in cached:
            try:
                chain = parse_trusted(cached["genesis"], str(chain_file(store.path)))
                if chain.genesis_hash.hex() == want:
                    return chain, False
            except VerificationError:
                pass
        if client is None:
            raise VerificationError("no-genesis", "the pinned genesis is not cached and no node was given")
        chain = fetch_genesis(client)
        if chain.genesis_hash.hex() != want:
            raise VerificationError(
                "genesis-mismatch",
                f"{client.url} serves chain {chain.chain_id!r} with genesis {chain.genesis_hash.hex()[:16]}..., "
                f"but this wallet trusts {pin.get('chain_id')!r} with genesis {str(want)[:16]}...: a different "
                f"network, or a node that lies. If the network was recreated on purpose, run "
                f"`ledger-wallet trust --reset`.")
        write_chain_file(store.path, chain)
        return chain, False
    if client is None:
        raise VerificationError("no-genesis", "the wallet trusts no genesis yet and no node was given")
    chain = fetch_genesis(client)
    store.pin_genesis(chain.chain_id, chain.genesis_hash.hex())
    write_chain_file(store.path, chain)
    return chain, True


def pin_chain(store: Keystore, chain: TrustedChain) -> None:
    """Pin ``chain`` in ``store`` (and cache its genesis beside it) without asking any node."""
    store.pin_genesis(chain.chain_id, chain.genesis_hash.hex())
    write_chain_file(store.path, chain)


def known_height(wallet_path: Path, store: Keystore | None = None) -> int | None:
    """The highest height this wallet saw committed on its pinned chain (for ``?min_height=``)."""
    cached = _read_chain_file(chain_file(wallet_path))
    pin = store.trusted_genesis if store is not None else None
    if pin is not None and cached.get("genesis_hash") != pin.get("genesis_hash"):
        return None
    height = cached.get("last_height")
    return height if isinstance(height, int) and height > 0 else None


def remember_height(wallet_path: Path, chain: TrustedChain, height: int) -> None:
    cached = _read_chain_file(chain_file(wallet_path))
    if cached.get("genesis_hash") == chain.genesis_hash.hex() and int(cached.get("last_height") or 0) >= height:
        return
    write_chain_file(wallet_path, chain, height)
