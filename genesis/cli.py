"""``ledger-genesis`` (or ``python -m genesis``): make a new genesis with its keys, or check one.

    ledger-genesis new --validators 4 --chain-id mynet --out genesis.json
    ledger-genesis check genesis.json

Without ``--chain-id`` a new genesis gets a chain id of its own, ``ledger-``
and 8 hex digits (random, or derived from ``--seed``): a new set of keys is a
new network, and two networks should not share a name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genesis.build import FAUCET_AMOUNT, make_devnet_genesis
from genesis.document import dump_genesis, format_genesis_time, genesis_hash, load_genesis
from genesis.errors import GenesisError
from node.crypto import address_of, derive_public_key, sha256


def write_key_file(path: Path, name: str, private_key: bytes) -> None:
    """A private key as JSON, readable by its owner only."""
    public_key = derive_public_key(private_key)
    body = {
        "name": name,
        "private_key": private_key.hex(),
        "public_key": public_key.hex(),
        "address": address_of(public_key),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(body, indent=2) + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed


def default_chain_id(seed: bytes | None) -> str:
    """``ledger-`` and 8 hex digits: random, or a function of ``seed`` (same seed, same keys and chain id)."""
    suffix = os.urandom(4).hex() if seed is None else sha256(b"chain-id" + seed).hex()[:8]
    return f"ledger-{suffix}"


def run_new(args: argparse.Namespace) -> int:
    out = Path(args.out)
    keys_dir = Path(args.keys_dir) if args.keys_dir else out.parent / "keys"
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    seed = bytes.fromhex(args.seed) if args.seed is not None else None
    genesis, validator_keys, wallet_keys = make_devnet_genesis(
        args.validators,
        chain_id=args.chain_id or default_chain_id(seed),
        faucet_amount=args.faucet_amount,
        demo_wallets=args.demo_wallets,
        seed=seed,
    )
    key_files = {keys_dir / f"{name}.json": (name, key) for name, key in {**validator_keys, **wallet_keys}.items()}
    existing = [str(path) for path in key_files if path.exists()]
    if existing and not args.force:
        print(f"error: key files exist, not overwriting them (use --force): {', '.join(existing)}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    keys_dir.mkdir(parents=True, exist_ok=True)
    for path, (name, key) in key_files.items():
        write_key_file(path, name, key)
    dump_genesis(genesis, out)
    print(f"wrote {out} (chain {genesis.chain_id}, hash {genesis_hash(genesis).hex()})")
    print(f"wrote {len(validator_keys)} validator and {len(wallet_keys)} wallet key files to {keys_dir}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    genesis = load_genesis(args.file)
    print(f"chain_id      {genesis.chain_id}")
    print(f"genesis_time  {format_genesis_time(genesis.genesis_time_ms)}")
    print(f"validators    {len(genesis.validators)} (total power {genesis.total_power})")
    print(f"allocations   {len(genesis.allocations)} (supply {genesis.total_supply})")
    print(f"hash          {genesis_hash(genesis).hex()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger-genesis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a genesis with fresh validator and wallet keys")
    new.add_argument("--validators", type=int, required=True, help="number of validators")
    new.add_argument("--chain-id", help="the network's name (default: ledger- and 8 hex digits, random or from "
                                        "--seed)")
    new.add_argument("--out", required=True, help="genesis JSON file to write")
    new.add_argument("--keys-dir", help="where key files go (default: keys/ beside --out)")
    new.add_argument("--faucet-amount", type=int, default=FAUCET_AMOUNT, help="base units for the faucet wallet")
    new.add_argument("--demo-wallets", type=int, default=3, help="funded demo wallets besides the faucet")
    new.add_argument("--seed", help="hex seed to derive every key from (reproducible; never for real money)")
    new.add_argument("--force", action="store_true", help="overwrite an existing --out")
    new.set_defaults(run=run_new)
    check = commands.add_parser("check", help="validate a genesis file and print its hash")
    check.add_argument("file", help="the genesis file to check")
    check.set_defaults(run=run_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except GenesisError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad --seed
        print(f"error: {exc}", file=sys.stderr)
        return 1
