"""The commands that set a wallet up: ``new`` (a wallet file with a new key, optionally pinning a genesis file;
``import`` in ``wallet.key_commands`` writes the same file for a key it is given)
and ``trust`` (show the pinned genesis, or re-pin it with ``--reset``)."""

from __future__ import annotations

import json
from pathlib import Path

from node.crypto import encode_address
from wallet.client import NodeUnreachable
from wallet.context import EXIT_OK, EXIT_USAGE, CliError, Context, note
from wallet.keystore import create_keystore
from wallet.trust import fetch_genesis, parse_trusted, pin_chain


def cmd_new(ctx: Context) -> int:
    return create_wallet(ctx, None, "new wallet")


def create_wallet(ctx: Context, private_key: bytes | None, what: str, **extra: object) -> int:
    """Write the wallet file of ``new`` and ``import``: ``private_key`` (None: a new one), encrypted with a
    passphrase unless ``--no-passphrase``, the ``--genesis`` file pinned if one is given."""
    path = ctx.wallet_path
    if path.exists():
        raise CliError("wallet-exists", f"{path} already exists; refusing to overwrite a wallet", EXIT_USAGE)
    passphrase = None if ctx.args.no_passphrase else ctx.passphrase(confirm=True)
    if passphrase == "":
        raise CliError("empty-passphrase", "the passphrase is empty; choose one, or use --no-passphrase", EXIT_USAGE)
    chain = None
    if ctx.args.genesis:
        try:
            chain = parse_trusted(json.loads(Path(ctx.args.genesis).read_text()), ctx.args.genesis)
        except (OSError, ValueError) as exc:
            raise CliError("bad-genesis", f"cannot read {ctx.args.genesis}: {exc}", EXIT_USAGE) from None
    store = create_keystore(path, private_key, passphrase)
    if chain is not None:
        pin_chain(store, chain)
    ctx.emit({"address": store.address, "wallet": str(path), "encrypted": store.encrypted,
              "trusted_genesis": store.trusted_genesis, **extra},
             [f"{what} {path}", f"address {store.address}",
              "encrypted with your passphrase (scrypt + AES-256-GCM)" if store.encrypted
              else "NOT encrypted (--no-passphrase): for devnets only"])
    return EXIT_OK


def cmd_trust(ctx: Context) -> int:
    store = ctx.keystore()
    node = None
    if ctx.args.reset:
        old = store.trusted_genesis
        ctx.expect(None)  # whatever the node runs now is what gets pinned
        chain = fetch_genesis(ctx.client)
        pin_chain(store, chain)
        node = ctx.client.url
        note(f"re-pinned: genesis {chain.genesis_hash.hex()} of chain {chain.chain_id!r} from {ctx.client.url}"
             + (f" (was {old.get('genesis_hash')})" if old else ""))
    else:
        chain = ctx.trusted_chain(store)
        try:  # the pin is shown even with no node up, but a node that runs another genesis is refused
            ctx.client.status()
            node = ctx.client.url
        except NodeUnreachable as exc:
            note(f"not compared with any node: {exc.message}")
    vs = chain.validators
    ctx.emit({"chain_id": chain.chain_id, "genesis_hash": chain.genesis_hash.hex(), "total_power": vs.total_power,
              "validators": [{"name": v.name, "address": encode_address(v.address), "power": v.power} for v in vs],
              "node": node},
             [f"chain {chain.chain_id}, genesis {chain.genesis_hash.hex()}"
              + (f" (run by the node at {node})" if node else ""),
              f"{len(vs)} validators, total voting power {vs.total_power}"]
             + [f"  {v.name:<16} {encode_address(v.address)}  power {v.power}" for v in vs])
    return EXIT_OK

