"""Genesis documents: build, validate, hash, read and write them."""

from genesis.build import make_devnet_genesis, make_genesis
from genesis.document import (
    Allocation,
    ConsensusParams,
    Genesis,
    GenesisValidator,
    dump_genesis,
    encode_genesis,
    genesis_hash,
    genesis_to_json,
    load_genesis,
    loads_genesis,
    parse_genesis,
    validate_genesis,
    validator_set_of,
)
from genesis.errors import GenesisError

__all__ = [
    "Allocation",
    "ConsensusParams",
    "Genesis",
    "GenesisError",
    "GenesisValidator",
    "dump_genesis",
    "encode_genesis",
    "genesis_hash",
    "genesis_to_json",
    "load_genesis",
    "loads_genesis",
    "make_devnet_genesis",
    "make_genesis",
    "parse_genesis",
    "validate_genesis",
    "validator_set_of",
]
