"""``import`` (a wallet file for an existing private key) and ``export`` (print a wallet's private key).

``import`` reads a key file written by ``ledger-genesis new`` (``keys/validator-N.json``, JSON with
``private_key``), a ledger-wallet file without a passphrase, or plain text holding the key as 64 hex
characters; ``-`` (the default) reads that text from stdin, so the key never stands in the shell's history.
The new wallet file is written as ``new`` writes one: encrypted with a passphrase unless ``--no-passphrase``.

``export`` prints the key only with ``--reveal-private-key`` and warns on stderr: whoever reads it can spend
every coin of the address.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from node.crypto import CryptoError, address_of, check_private_key, derive_public_key
from wallet.context import EXIT_OK, EXIT_USAGE, CliError, Context, note
from wallet.setup_commands import create_wallet

REVEAL_FLAG = "--reveal-private-key"


def cmd_import(ctx: Context) -> int:
    source = ctx.args.source
    key = read_private_key(source)
    return create_wallet(ctx, key, "imported into", source="stdin" if source == "-" else str(source))


def read_private_key(source: str) -> bytes:
    """The private key in ``source`` (a path, or ``-`` for stdin); ``bad-key-file`` / ``bad-private-key``."""
    where = "stdin" if source == "-" else source
    try:
        if source != "-":
            text = Path(source).read_text(encoding="utf-8")
        elif sys.stdin.isatty():  # typed: not echoed
            text = getpass.getpass("Private key (64 hex characters): ")
        else:
            text = sys.stdin.read()
    except (EOFError, KeyboardInterrupt):
        raise CliError("bad-key-file", "no private key given", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError("bad-key-file", f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}",
                       EXIT_USAGE) from None
    text = text.strip()
    declared = None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise CliError("bad-key-file", f"{where} is not a key file: {exc}", EXIT_USAGE) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("private_key"), str):
            hint = " (an encrypted wallet file? it needs no import)" if isinstance(obj, dict) and obj.get(
                "encryption") else ""
            raise CliError("bad-key-file", f"{where} holds no private_key{hint}", EXIT_USAGE)
        text, declared = obj["private_key"].strip(), obj.get("address")
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        key = bytes.fromhex(text)
        check_private_key(key)
    except (ValueError, CryptoError):
        raise CliError("bad-private-key", f"{where} does not hold a private key: expected 64 hex characters "
                                          f"(a secp256k1 scalar)", EXIT_USAGE) from None
    if declared is not None and declared != address_of(derive_public_key(key)):
        raise CliError("bad-key-file", f"{where}: its private_key does not belong to its address {declared}",
                       EXIT_USAGE)
    return key


def cmd_export(ctx: Context) -> int:
    store = ctx.keystore()
    if not ctx.args.reveal:
        raise CliError("export-not-confirmed", f"export prints the private key of {store.address}, which spends all "
                                               f"its coins; add {REVEAL_FLAG} if that is what you want",
                       EXIT_USAGE)
    key = store.unlock(ctx.passphrase(store))
    note(f"WARNING: this is the private key of {store.address}. Anyone who sees it can spend every coin of the "
         f"address; do not paste it anywhere you would not put the coins.")
    ctx.emit({"address": store.address, "public_key": store.data["public_key"], "private_key": key.hex(),
              "wallet": str(store.path)}, [key.hex()])
    return EXIT_OK
