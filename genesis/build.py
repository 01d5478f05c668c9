"""Making genesis documents in code: for tests, simulations and the devnet."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from genesis.document import Allocation, ConsensusParams, Genesis, GenesisValidator, parse_address, validate_genesis
from node.crypto import N, address_hash, derive_public_key, generate_private_key, sha256
from node.encoding import Writer
from node.types.transaction import COIN

DEFAULT_POWER = 10
FAUCET_WALLET = "faucet"
FAUCET_AMOUNT = 1_000_000 * COIN
DEMO_AMOUNT = 1_000 * COIN
DEMO_WALLET_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

ValidatorSpec = tuple[str, bytes] | tuple[str, bytes, int]
"""(name, private key) or (name, private key, power)."""
AllocationSpec = Allocation | tuple[bytes | str, int]
"""An Allocation, or (20-byte account hash or "lg1..." address, amount)."""


def derive_private_key(seed: bytes, label: str) -> bytes:
    """A key that is a pure function of (seed, label): reproducible devnets and simulations."""
    for counter in range(1 << 32):
        candidate = sha256(Writer().var_bytes(seed).text(label).u32(counter).getvalue())
        if 1 <= int.from_bytes(candidate, "big") < N:
            return candidate
    raise AssertionError("unreachable: a 256-bit hash falls in [1, n) with probability 1 - 2^-128")


def new_private_key(seed: bytes | None, label: str) -> bytes:
    return generate_private_key() if seed is None else derive_private_key(seed, label)


def validator_name(index: int) -> str:
    return f"validator-{index}"


def _allocation(spec: AllocationSpec, index: int) -> Allocation:
    if isinstance(spec, Allocation):
        return spec
    address, amount = spec
    if isinstance(address, str):
        address = parse_address(address, f"allocations[{index}].address")
    return Allocation(address, amount)


def make_genesis(
    chain_id: str,
    validator_keys: Sequence[ValidatorSpec] | int,
    allocations: Iterable[AllocationSpec] = (),
    params: ConsensusParams | None = None,
    genesis_time_ms: int | None = None,
    *,
    power: int = DEFAULT_POWER,
    seed: bytes | None = None,
) -> tuple[Genesis, dict[str, bytes]]:
    """A validated genesis, and each validator's private key by name.

    ``validator_keys`` is either the keys (with names, optionally powers) or a
    count, in which case keys are made: fresh, or derived from ``seed``.
    Without ``genesis_time_ms`` the genesis starts now (whole seconds).
    """
    if isinstance(validator_keys, int):
        validator_keys = [(validator_name(i), new_private_key(seed, validator_name(i))) for i in range(validator_keys)]
    validators = []
    keys: dict[str, bytes] = {}
    for spec in validator_keys:
        name, private_key, *rest = spec
        validators.append(GenesisValidator(name, derive_public_key(private_key), rest[0] if rest else power))
        keys[name] = private_key
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time()) * 1000 if genesis_time_ms is None else genesis_time_ms,
        validators=tuple(validators),
        allocations=tuple(_allocation(spec, i) for i, spec in enumerate(allocations)),
        params=params or ConsensusParams(),
    )
    validate_genesis(genesis)  # also catches a name given twice, which ``keys`` would hide
    return genesis, keys


def make_devnet_genesis(
    n_validators: int,
    chain_id: str = "devnet",
    faucet_amount: int = FAUCET_AMOUNT,
    demo_wallets: int = 3,
    *,
    demo_amount: int = DEMO_AMOUNT,
    params: ConsensusParams | None = None,
    genesis_time_ms: int | None = None,
    seed: bytes | None = None,
) -> tuple[Genesis, dict[str, bytes], dict[str, bytes]]:
    """A local network: validators, a funded faucet and a few funded demo wallets.

    Returns the genesis, validator private keys by name, and wallet private
    keys by name (``faucet`` first, then alice, bob, ...).
    """
    names = [FAUCET_WALLET] + [
        DEMO_WALLET_NAMES[i] if i < len(DEMO_WALLET_NAMES) else f"wallet-{i + 1}" for i in range(demo_wallets)
    ]
    wallets = {name: new_private_key(seed, f"wallet:{name}") for name in names}
    allocations = [
        Allocation(address_hash(derive_public_key(key)), faucet_amount if name == FAUCET_WALLET else demo_amount)
        for name, key in wallets.items()
    ]
    genesis, validator_keys = make_genesis(
        chain_id, n_validators, allocations, params, genesis_time_ms, seed=seed
    )
    return genesis, validator_keys, wallets
