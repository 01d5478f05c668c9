"""``ledger-wallet``: keys, addresses, balances, payments and verified confirmations.

Talks to any node over its REST API.  Without ``--node`` it uses
``$LEDGER_NODE``, else the nodes of the devnet the wallet file belongs to (the
``network.json`` beside it, or beside its ``wallets/`` folder), else those of
``./.devnet`` (the first one that answers), else http://127.0.0.1:26657.  A
node that runs another genesis than the one the wallet pinned is refused
(``wrong-genesis``, exit 4) before any of its answers is used.

Exit codes: 0 done; 1 the operation failed (rejected, unknown, insufficient
funds, timed out, accepted but not committed within --wait-timeout); 2 bad
input (address, amount, wallet file, passphrase, a fee above the guard);
3 no node reachable; 4 a node runs another genesis than the pinned one, or
served something that does not verify.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from wallet.amounts import format_coins
from wallet.client import NodeError, NodeUnreachable, WrongGenesis
from wallet.coins import DEFAULT_FEE_RATE

# the commands live in wallet.read_commands, wallet.send_command and wallet.setup_commands; what they share
# (CliError, Context, the exit codes) in wallet.context, and stays reachable here as wallet.cli.<name>
from wallet.context import (
    DEFAULT_NODE,
    DEFAULT_WALLET,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_UNVERIFIED,
    EXIT_USAGE,
    CliError,
    Context,
)
from wallet.fees import MAX_FEE
from wallet.key_commands import REVEAL_FLAG, cmd_export, cmd_import
from wallet.keystore import KeystoreError
from wallet.quorum import QuorumError
from wallet.read_commands import cmd_address, cmd_balance, cmd_history, cmd_tx, cmd_utxos
from wallet.send_command import COMMIT_WAIT_S, cmd_send
from wallet.setup_commands import cmd_new, cmd_trust
from wallet.verify import VerificationError
from wallet.watch_command import cmd_watch

HINTS = {
    "txn-mempool-conflict": "an earlier payment from this wallet is still pending and spends the same coins: "
                            "wait for it to commit (send --wait waits) and send again",
    "bad-txns-inputs-missingorspent": "the node has not seen the coins this wallet chose, or they are spent: "
                                      "retry in a moment, or ask another node with --node",
    "height-not-reached": "this node is behind the height the wallet already saw: ask another node with --node",
}
COMMON_DEFAULTS = {"node": None, "wallet": None, "json": False, "passphrase_env": None, "timeout": 10.0,
                   "trust_one": False}


# --------------------------------------------------------------------------- parser


def positive_seconds(text: str) -> float:
    """``--timeout``: a positive number of seconds (anything else is a usage error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = WalletArgumentParser(add_help=False)
    common.add_argument("--node", action="append", default=argparse.SUPPRESS,
                        help="node REST URL; give it several times (or comma-separated) to know several nodes: "
                             "balance and utxos then believe only what validators holding more than 1/3 of the "
                             "voting power sign alike; default: $LEDGER_NODE, else the nodes of the devnet the "
                             f"wallet file belongs to, else the ./.devnet nodes, else {DEFAULT_NODE}")
    common.add_argument("--trust-one", dest="trust_one", action="store_true", default=argparse.SUPPRESS,
                        help="balance and utxos take the word of the first node that answers (no verified read)")
    common.add_argument("--wallet", default=argparse.SUPPRESS,
                        help=f"wallet file (default $LEDGER_WALLET, else {DEFAULT_WALLET})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--passphrase-env", default=argparse.SUPPRESS, metavar="VAR",
                        help="read the passphrase from environment variable VAR instead of prompting")
    common.add_argument("--timeout", type=positive_seconds, default=argparse.SUPPRESS,
                        help="seconds per request (default 10)")

    parser = WalletArgumentParser(prog="ledger-wallet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    from node import release
    parser.add_argument("--version", action="version", version=f"ledger-wallet {release()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("new", parents=[common], help="create a wallet file with a new key")
    p.add_argument("--no-passphrase", action="store_true", help="store the key unencrypted (devnets only)")
    p.add_argument("--genesis", metavar="FILE", help="pin this genesis file now instead of on first use")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("address", parents=[common], help="print the wallet's address")
    p.set_defaults(func=cmd_address)

    p = sub.add_parser("balance", parents=[common], help="balance of the wallet or of ADDRESS")
    p.add_argument("address", nargs="?", help="an lg1... address (default: this wallet's)")
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser("utxos", parents=[common], help="the wallet's unspent outputs")
    p.set_defaults(func=cmd_utxos)

    p = sub.add_parser("send", parents=[common], help="pay AMOUNT to address TO")
    p.add_argument("to", help="the recipient's address (lg1...)")
    p.add_argument("amount", nargs="?", help="coins (1.5) or, with --base-units, base units; omit with --all")
    p.add_argument("--all", action="store_true", help="send everything the wallet has, minus the fee (a sweep)")
    p.add_argument("--subtract-fee", action="store_true",
                   help="the recipient pays the fee: it gets AMOUNT minus the fee")
    p.add_argument("--fee", metavar="COINS",
                   help="fixed fee, in coins like AMOUNT (in base units with --base-units); "
                        "default: --fee-rate times the size")
    p.add_argument("--fee-rate", type=int, default=DEFAULT_FEE_RATE, metavar="BASE_UNITS_PER_BYTE",
                   help="fee rate in base units per byte of the transaction (default %(default)s)")
    p.add_argument("--base-units", action="store_true", help="AMOUNT and --fee are in base units")
    p.add_argument("--force", action="store_true",
                   help=f"pay a fee above the guard: more than {format_coins(MAX_FEE)} coin, or more than the "
                        f"recipient gets (beyond the default rate)")
    p.add_argument("--dry-run", action="store_true", help="build and sign, but do not submit")
    p.add_argument("--hex", action="store_true",
                   help="print the signed transaction's bytes in hex (with --dry-run: only the hex and the txid)")
    p.add_argument("--wait", action="store_true", help="wait for the commit and verify its certificate and proof")
    p.add_argument("--wait-timeout", type=positive_seconds, default=COMMIT_WAIT_S,
                   help="seconds --wait waits before it gives up, exit 1 (default %(default)s)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("import", parents=[common], help="a new wallet file from an existing private key")
    p.add_argument("source", nargs="?", default="-", metavar="KEYFILE",
                   help="a key file of `ledger-genesis new` (keys/validator-N.json), or a file holding the "
                        "private key in hex; - or nothing: read the hex from stdin")
    p.add_argument("--no-passphrase", action="store_true", help="store the key unencrypted (devnets only)")
    p.add_argument("--genesis", metavar="FILE", help="pin this genesis file now instead of on first use")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", parents=[common], help="print the wallet's private key in hex (dangerous)")
    p.add_argument(REVEAL_FLAG, action="store_true", dest="reveal",
                   help="required: confirms that you mean to print the key that spends the wallet's coins")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tx", parents=[common], help="status of TXID; verifies a committed one")
    p.add_argument("txid", help="the transaction id (64 hex digits)")
    p.set_defaults(func=cmd_tx)

    p = sub.add_parser("history", parents=[common], help="transactions touching the wallet, newest first")
    p.add_argument("--limit", type=int, default=100, help="most transactions listed (default 100)")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("watch", parents=[common], help="print payments to or from the wallet as they commit")
    p.add_argument("--count", type=int, metavar="N", help="stop after N payments")
    p.add_argument("--for", dest="duration", type=positive_seconds, metavar="SECONDS",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("trust", parents=[common], help="show the pinned genesis (or re-pin it with --reset)")
    p.add_argument("--reset", action="store_true", help="trust the genesis the node serves now")
    p.set_defaults(func=cmd_trust)
    return parser


class WalletArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are JSON ``{"error": {"code": "bad-usage", ...}}`` under ``--json``."""

    json_errors = False

    def error(self, message: str):  # never returns
        if WalletArgumentParser.json_errors:
            print(json.dumps({"error": {"code": "bad-usage", "message": f"{self.prog}: {message}"}}, indent=2))
            raise SystemExit(EXIT_USAGE)
        super().error(message)


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    parser = build_parser()
    WalletArgumentParser.json_errors = "--json" in (sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # the common options may stand before or after the command; defaults are filled in here because
    # parent-parser actions are shared objects, so set_defaults would leak into every subcommand
    for key, value in COMMON_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    ctx = Context(args, transport)
    try:
        return args.func(ctx)
    except CliError as exc:
        return report(ctx, exc.code, exc.message, exc.exit_code, exc.details)
    except KeystoreError as exc:
        return report(ctx, exc.code, exc.message, EXIT_USAGE)
    except NodeUnreachable as exc:
        return report(ctx, exc.code, exc.message, EXIT_UNREACHABLE)
    except WrongGenesis as exc:
        return report(ctx, exc.code, f"NOT BELIEVED: {exc.message}", EXIT_UNVERIFIED,
                      {"node": exc.url, "node_chain_id": exc.chain_id, "node_genesis_hash": exc.served,
                       "chain_id": exc.expected_chain, "genesis_hash": exc.expected})
    except NodeError as exc:
        details = dict(exc.details)
        hint = HINTS.get(exc.code, "")
        return report(ctx, exc.code, f"{exc.url or 'node'} refused: {exc.message} ({exc.code}, HTTP {exc.status})"
                      + (f"; {hint}" if hint else ""), EXIT_FAILED, details)
    except QuorumError as exc:
        return report(ctx, exc.code, f"NOT VERIFIED: {exc.message}", EXIT_UNVERIFIED, exc.details)
    except VerificationError as exc:
        node = ctx._client.url if ctx._client is not None else "the node"
        return report(ctx, exc.code, f"NOT VERIFIED: {node} served data that does not check out "
                                     f"({exc.code}): {exc.message}", EXIT_UNVERIFIED)
    finally:
        ctx.close()


def report(ctx: Context, code: str, message: str, exit_code: int, details: dict | None = None) -> int:
    if ctx.json:
        print(json.dumps({"error": {"code": code, "message": message, **(details or {})}}, indent=2))
    else:
        print(f"error: {message}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
