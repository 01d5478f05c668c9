"""``ledger-wallet``: keys, addresses, balances, payments and verified confirmations.

Talks to any node over its REST API.  Without ``--node`` it uses
``$LEDGER_NODE``, else the nodes of the devnet the wallet file belongs to (the
``network.json`` beside it, or beside its ``wallets/`` folder), else those of
``./.devnet`` (the first one that answers), else http://127.0.0.1:26657.  A
node that runs another genesis than the one the wallet pinned is refused
(``wrong-genesis``, exit 4) before any of its answers is used.

Exit codes: 0 done; 1 the operation failed (rejected, unknown, insufficient
funds, timed out); 2 bad input (address, amount, wallet file, passphrase);
3 no node reachable; 4 a node runs another genesis than the pinned one, or
served something that does not verify.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path

import httpx

from node.crypto import CryptoError, decode_address, encode_address
from node.errors import CodedError
from node.types.transaction import OutPoint, TxOutput, sign_transaction
from wallet.amounts import AmountError, amount_json, describe_amount, format_coins, parse_amount
from wallet.client import NodeClient, NodeError, NodeUnreachable, WrongGenesis
from wallet.coins import DEFAULT_FEE_RATE, Coin, SelectionError, select_coins
from wallet.keystore import Keystore, KeystoreError, create_keystore, load_keystore
from wallet.trust import (
    TrustedChain,
    fetch_genesis,
    known_height,
    load_trust,
    parse_trusted,
    pin_chain,
    remember_height,
)
from wallet.verify import VerificationError, VerifiedTx, verify_tx_inclusion

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNVERIFIED = 0, 1, 2, 3, 4
DEFAULT_NODE = "http://127.0.0.1:26657"
DEFAULT_WALLET = "~/.ledger-wallet/wallet.json"
DEVNET_NETWORK_FILE = Path(".devnet") / "network.json"
NETWORK_FILE_NAME = "network.json"
COMMIT_WAIT_S = 60.0
UTXO_PAGE = 1000
HINTS = {
    "txn-mempool-conflict": "an earlier payment from this wallet is still pending and spends the same coins: "
                            "wait for it to commit (send --wait waits) and send again",
    "bad-txns-inputs-missingorspent": "the node has not seen the coins this wallet chose, or they are spent: "
                                      "retry in a moment, or ask another node with --node",
    "height-not-reached": "this node is behind the height the wallet already saw: ask another node with --node",
}
COMMON_DEFAULTS = {"node": None, "wallet": None, "json": False, "passphrase_env": None, "timeout": 10.0}


class CliError(CodedError):
    """A failure to report: stable code, message for people, exit status."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILED, **details: object):
        super().__init__(code, message, **details)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- plumbing


class Context:
    """What every command gets: parsed arguments, output mode, node client, wallet."""

    def __init__(self, args: argparse.Namespace, transport: httpx.BaseTransport | None):
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.transport = transport
        self._client: NodeClient | None = None
        self.pin: dict | None = None
        """The genesis pinned by the wallet file in use: every node must run it."""

    @property
    def wallet_path(self) -> Path:
        value = self.args.wallet or os.environ.get("LEDGER_WALLET") or DEFAULT_WALLET
        return Path(value).expanduser()

    def node_urls(self) -> list[str]:
        if self.args.node:
            return [u.strip() for u in self.args.node.split(",") if u.strip()]
        if os.environ.get("LEDGER_NODE"):
            return [os.environ["LEDGER_NODE"]]
        urls = wallet_devnet_urls(self.wallet_path) or devnet_urls(DEVNET_NETWORK_FILE)
        return urls or [DEFAULT_NODE]

    @property
    def client(self) -> NodeClient:
        if self._client is None:
            pin = self.pin or {}
            self._client = NodeClient(self.node_urls(), timeout_s=self.args.timeout, transport=self.transport,
                                      expect_genesis=pin.get("genesis_hash"), expect_chain=pin.get("chain_id"))
        return self._client

    def expect(self, pin: dict | None) -> None:
        """Use only nodes that run the genesis of ``pin`` (``{"chain_id", "genesis_hash"}``; None: any)."""
        self.pin = pin
        if self._client is not None:
            self._client.expect((pin or {}).get("genesis_hash"), (pin or {}).get("chain_id"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def keystore(self) -> Keystore:
        store = load_keystore(self.wallet_path)
        self.expect(store.trusted_genesis)
        return store

    def passphrase(self, store: Keystore | None = None, confirm: bool = False) -> str | None:
        if store is not None and not store.encrypted:
            return None
        var = self.args.passphrase_env
        if var:
            value = os.environ.get(var)
            if value is None:
                raise CliError("no-passphrase", f"environment variable {var} is not set", EXIT_USAGE)
            return value
        try:
            first = getpass.getpass(f"Passphrase for {self.wallet_path}: ")
            if confirm and getpass.getpass("Repeat the passphrase: ") != first:
                raise CliError("passphrase-mismatch", "the two passphrases differ", EXIT_USAGE)
        except (EOFError, KeyboardInterrupt):
            raise CliError("no-passphrase", "no passphrase given (use --passphrase-env VAR when scripting)",
                           EXIT_USAGE) from None
        return first

    def trusted_chain(self, store: Keystore) -> TrustedChain:
        chain, pinned_now = load_trust(store, self.client)
        self.expect({"chain_id": chain.chain_id, "genesis_hash": chain.genesis_hash.hex()})
        if pinned_now:
            note(f"trusting chain {chain.chain_id!r}, genesis {chain.genesis_hash.hex()} from {self.client.url}; "
                 f"pinned in {store.path}")
        return chain

    def min_height(self, store: Keystore | None) -> int | None:
        if store is None:
            return None
        return known_height(store.path, store)

    def emit(self, obj: dict, lines: list[str]) -> None:
        if self.json:
            print(json.dumps(obj, indent=2))
        else:
            for line in lines:
                print(line)


def note(message: str) -> None:
    print(message, file=sys.stderr)


def devnet_urls(network_file: Path) -> list[str]:
    try:
        obj = json.loads(Path(network_file).read_text())
        return [f"http://{n['host']}:{n['port']}" for n in obj["nodes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def wallet_devnet_urls(wallet_path: Path) -> list[str]:
    """The nodes of the devnet ``wallet_path`` belongs to: ``network.json`` in its folder (``HOME/me.json``),
    or beside its ``wallets/`` folder (``HOME/wallets/faucet.json``); [] for a wallet outside any devnet."""
    folder = Path(wallet_path).expanduser().absolute().parent
    homes = [folder] + ([folder.parent] if folder.name == "wallets" else [])
    for home in homes:
        if (home / NETWORK_FILE_NAME).exists():
            return devnet_urls(home / NETWORK_FILE_NAME)
    return []


def parse_address_arg(text: str) -> bytes:
    try:
        return decode_address(text.strip())
    except CryptoError as exc:
        raise CliError(exc.code, f"bad address {text!r}: {exc.message}", EXIT_USAGE) from None


def parse_txid_arg(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CliError("bad-txid", f"{text!r} is not a txid (64 hex characters)", EXIT_USAGE)
    return raw


def parse_amount_arg(text: str, base_units: bool, allow_zero: bool = False) -> int:
    try:
        return parse_amount(text, base_units, allow_zero)
    except AmountError as exc:
        raise CliError(exc.code, exc.message, EXIT_USAGE) from None


def fetch_coins(ctx: Context, address: str, min_height: int | None) -> tuple[list[Coin], int]:
    coins: list[Coin] = []
    after = None
    height = 0
    while True:
        page = ctx.client.get(f"/v1/addresses/{address}/utxos", limit=UTXO_PAGE, after=after, min_height=min_height)
        height = page.get("height", height)
        for u in page["utxos"]:
            coins.append(Coin(OutPoint(bytes.fromhex(u["txid"]), int(u["index"])), int(u["amount"]),
                              int(u.get("height", 0))))
        after = page.get("next")
        if not after:
            return coins, height
        min_height = None


def verified_json(v: VerifiedTx) -> dict:
    b = v.block
    return {"verified": True, "signed_power": b.signed_power, "total_power": b.total_power, "signers": b.signers,
            "validators": b.validators, "block_hash": b.block_hash.hex(), "height": b.header.height,
            "app_hash": b.header.app_hash.hex(), "summary": v.summary()}


def fetch_and_verify(ctx: Context, chain: TrustedChain, txid: bytes, answer: dict) -> VerifiedTx:
    height = answer.get("height")
    if not isinstance(height, int) or height < 1:
        raise VerificationError("malformed-answer", "the node reports the transaction committed without a height")
    block = ctx.client.get(f"/v1/blocks/{height}")
    return verify_tx_inclusion(chain.chain_id, chain.validators, txid, answer, block)


# --------------------------------------------------------------------------- commands


def cmd_new(ctx: Context) -> int:
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
    store = create_keystore(path, None, passphrase)
    if chain is not None:
        pin_chain(store, chain)
    ctx.emit({"address": store.address, "wallet": str(path), "encrypted": store.encrypted,
              "trusted_genesis": store.trusted_genesis},
             [f"new wallet {path}", f"address {store.address}",
              "encrypted with your passphrase (scrypt + AES-256-GCM)" if store.encrypted
              else "NOT encrypted (--no-passphrase): for devnets only"])
    return EXIT_OK


def cmd_address(ctx: Context) -> int:
    store = ctx.keystore()
    ctx.emit({"address": store.address, "public_key": store.data["public_key"], "wallet": str(store.path)},
             [store.address])
    return EXIT_OK


def cmd_balance(ctx: Context) -> int:
    store = None
    if ctx.args.address:
        address = encode_address(parse_address_arg(ctx.args.address))
        if ctx.wallet_path.exists():
            store = ctx.keystore()
    else:
        store = ctx.keystore()
        address = store.address
    answer = ctx.client.get(f"/v1/addresses/{address}/balance", min_height=ctx.min_height(store))
    amount = int(answer["balance"])
    ctx.emit({"address": address, "height": answer["height"], "balance": amount_json(amount), "node": ctx.client.url},
             [f"{address}: {describe_amount(amount)} at height {answer['height']}"])
    return EXIT_OK


def cmd_utxos(ctx: Context) -> int:
    store = ctx.keystore()
    coins, height = fetch_coins(ctx, store.address, ctx.min_height(store))
    total = sum(c.amount for c in coins)
    lines = [f"{c.outpoint.txid.hex()}:{c.outpoint.index}  {format_coins(c.amount):>22}  height {c.height}"
             for c in coins]
    lines.append(f"{len(coins)} unspent outputs, {describe_amount(total)} at height {height}")
    ctx.emit({"address": store.address, "height": height, "total": amount_json(total),
              "utxos": [{"txid": c.outpoint.txid.hex(), "index": c.outpoint.index, "height": c.height,
                         "amount": amount_json(c.amount)} for c in coins]}, lines)
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    store = ctx.keystore()
    answer = ctx.client.get(f"/v1/addresses/{store.address}/txs", limit=ctx.args.limit,
                            min_height=ctx.min_height(store))
    items = answer.get("txs", [])
    lines = [f"height {e['height']:>8}  #{e['index']:<10}  {e['kind']:<7}  {e['txid']}" for e in items]
    if not items:
        lines.append(f"no transactions for {store.address}")
    ctx.emit({"address": store.address, "height": answer.get("height"), "txs": items, "next": answer.get("next")},
             lines)
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


def cmd_send(ctx: Context) -> int:
    args = ctx.args
    store = ctx.keystore()
    recipient = parse_address_arg(args.to)
    amount = parse_amount_arg(args.amount, args.base_units)
    fee = parse_amount_arg(args.fee, args.base_units, allow_zero=True) if args.fee is not None else None
    key = store.unlock(ctx.passphrase(store))
    chain = ctx.trusted_chain(store)
    coins, _height = fetch_coins(ctx, store.address, ctx.min_height(store))
    try:
        selection = select_coins(coins, amount, fee=fee, fee_rate=args.fee_rate)
    except SelectionError as exc:
        if exc.code == "insufficient-funds":
            needed = exc.amount("needed")
            raise CliError(exc.code, f"insufficient funds: {describe_amount(amount)} plus a fee of "
                                     f"{describe_amount(needed - amount)} needs {describe_amount(needed)}; "
                                     f"the wallet has {describe_amount(exc.amount('available'))}, short by "
                                     f"{describe_amount(exc.amount('shortfall'))}", EXIT_FAILED,
                           **exc.details) from None
        raise CliError(exc.code, exc.message, EXIT_FAILED, **exc.details) from None
    own = decode_address(store.address)
    outputs = [TxOutput(recipient, amount)]
    if selection.change:
        outputs.append(TxOutput(own, selection.change))
    tx = sign_transaction(chain.chain_id, [(c.outpoint, key) for c in selection.inputs], outputs)
    txid = tx.txid.hex()
    body = {"tx": tx.encoded.hex(), "chain_id": chain.chain_id}
    result: dict = {"txid": txid, "to": encode_address(recipient), "amount": amount_json(amount),
                    "fee": amount_json(selection.fee), "change": amount_json(selection.change),
                    "inputs": len(selection.inputs), "size": tx.size, "node": None}
    lines = [f"sent {describe_amount(amount)} to {encode_address(recipient)}",
             f"fee {describe_amount(selection.fee)}, change {describe_amount(selection.change)}, "
             f"{len(selection.inputs)} input(s), {tx.size} bytes",
             f"txid {txid}"]
    if not args.wait:
        answer = ctx.client.post("/v1/txs", body)
        result.update(status=answer.get("status", "pending"), node=ctx.client.url)
        lines.append(f"status {result['status']} (accepted by {ctx.client.url}); check it with "
                     f"`ledger-wallet tx {txid}`")
        ctx.emit(result, lines)
        return EXIT_OK
    deadline = time.monotonic() + args.wait_timeout
    try:
        answer = ctx.client.post("/v1/txs", body, wait="commit", timeout_s=args.wait_timeout + 5)
    except NodeError as exc:
        if exc.code != "commit-timeout":
            raise
        answer = {}
    located = poll_committed(ctx, tx.txid, deadline, answer.get("height"))
    verified = fetch_and_verify(ctx, chain, tx.txid, located)
    remember_height(store.path, chain, verified.block.header.height)
    result.update(status="committed", node=ctx.client.url, **verified_json(verified))
    lines += [f"committed in block {verified.block.header.height} ({verified.block.block_hash.hex()})",
              verified.summary()]
    ctx.emit(result, lines)
    return EXIT_OK


def poll_committed(ctx: Context, txid: bytes, deadline: float, height: int | None) -> dict:
    """The node's committed answer for ``txid`` (with its merkle proof), waiting until ``deadline``."""
    while True:
        try:
            answer = ctx.client.get(f"/v1/txs/{txid.hex()}", min_height=height)
            if answer.get("status") == "committed":
                return answer
        except NodeError as exc:
            if exc.code not in ("tx-not-found", "height-not-reached"):
                raise
        if time.monotonic() >= deadline:
            raise CliError("commit-timeout", f"transaction {txid.hex()} was not committed in time; check later with "
                                             f"`ledger-wallet tx {txid.hex()}`", EXIT_FAILED, txid=txid.hex())
        time.sleep(0.2)


def cmd_tx(ctx: Context) -> int:
    txid = parse_txid_arg(ctx.args.txid)
    store = ctx.keystore()
    try:
        answer = ctx.client.get(f"/v1/txs/{txid.hex()}", min_height=ctx.min_height(store))
    except NodeError as exc:
        if exc.code == "tx-not-found":
            ctx.emit({"txid": txid.hex(), "status": "unknown", "node": ctx.client.url},
                     [f"{txid.hex()}: unknown to {ctx.client.url} (neither pending nor committed)"])
            return EXIT_FAILED
        raise
    status = answer.get("status")
    if status == "pending":
        ctx.emit({"txid": txid.hex(), "status": "pending", "node": ctx.client.url},
                 [f"{txid.hex()}: pending in the mempool of {ctx.client.url}"])
        return EXIT_OK
    if status != "committed":
        raise VerificationError("malformed-answer", f"unexpected status {status!r}")
    chain = ctx.trusted_chain(store)
    verified = fetch_and_verify(ctx, chain, txid, answer)
    remember_height(store.path, chain, verified.block.header.height)
    outputs = [{"address": encode_address(o.address), "amount": amount_json(o.amount)}
               for o in verified.tx.outputs]
    lines = [f"{txid.hex()}: committed in block {verified.block.header.height} at index {verified.index}",
             f"block {verified.block.block_hash.hex()}"]
    lines += [f"  output {i}: {describe_amount(o.amount)} to {encode_address(o.address)}"
              for i, o in enumerate(verified.tx.outputs)]
    lines.append(verified.summary())
    ctx.emit({"txid": txid.hex(), "status": "committed", "index": verified.index, "outputs": outputs,
              "node": ctx.client.url, **verified_json(verified)}, lines)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--node", default=argparse.SUPPRESS,
                        help="node REST URL (comma-separated for fallbacks); default: $LEDGER_NODE, else the "
                             "nodes of the devnet the wallet file belongs to, else the ./.devnet nodes, "
                             f"else {DEFAULT_NODE}")
    common.add_argument("--wallet", default=argparse.SUPPRESS,
                        help=f"wallet file (default $LEDGER_WALLET, else {DEFAULT_WALLET})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--passphrase-env", default=argparse.SUPPRESS, metavar="VAR",
                        help="read the passphrase from environment variable VAR instead of prompting")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (default 10)")

    parser = argparse.ArgumentParser(prog="ledger-wallet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("new", parents=[common], help="create a wallet file with a new key")
    p.add_argument("--no-passphrase", action="store_true", help="store the key unencrypted (devnets only)")
    p.add_argument("--genesis", metavar="FILE", help="pin this genesis file now instead of on first use")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("address", parents=[common], help="print the wallet's address")
    p.set_defaults(func=cmd_address)

    p = sub.add_parser("balance", parents=[common], help="balance of the wallet or of ADDRESS")
    p.add_argument("address", nargs="?")
    p.set_defaults(func=cmd_balance)

    p = sub.add_parser("utxos", parents=[common], help="the wallet's unspent outputs")
    p.set_defaults(func=cmd_utxos)

    p = sub.add_parser("send", parents=[common], help="pay AMOUNT to address TO")
    p.add_argument("to")
    p.add_argument("amount", help="coins (1.5) or, with --base-units, base units")
    p.add_argument("--fee", help="fixed fee (same unit as AMOUNT); default: --fee-rate times the size")
    p.add_argument("--fee-rate", type=int, default=DEFAULT_FEE_RATE, help="base units per byte (default %(default)s)")
    p.add_argument("--base-units", action="store_true", help="AMOUNT and --fee are in base units")
    p.add_argument("--wait", action="store_true", help="wait for the commit and verify its certificate and proof")
    p.add_argument("--wait-timeout", type=float, default=COMMIT_WAIT_S, help="seconds (default %(default)s)")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("tx", parents=[common], help="status of TXID; verifies a committed one")
    p.add_argument("txid")
    p.set_defaults(func=cmd_tx)

    p = sub.add_parser("history", parents=[common], help="transactions touching the wallet, newest first")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("trust", parents=[common], help="show the pinned genesis (or re-pin it with --reset)")
    p.add_argument("--reset", action="store_true", help="trust the genesis the node serves now")
    p.set_defaults(func=cmd_trust)
    return parser


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    parser = build_parser()
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
