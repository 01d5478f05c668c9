"""What every ``ledger-wallet`` command shares: the exit codes and ``CliError``, the ``Context`` (which node to
ask, which wallet file, the passphrase, the pinned genesis, the output mode), the parsing of argument values,
and the node reads more than one command makes (the wallet's coins; a committed transaction, verified)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from pathlib import Path

import httpx

from node.crypto import CryptoError, decode_address
from node.errors import CodedError
from node.types.transaction import OutPoint
from wallet.amounts import AmountError, parse_amount
from wallet.client import NodeClient
from wallet.coins import Coin
from wallet.keystore import Keystore, load_keystore
from wallet.quorum import MAX_NODES, Reader
from wallet.trust import TrustedChain, known_height, load_trust
from wallet.validator_walk import trusted_validators_at
from wallet.verify import VerificationError, VerifiedTx, verify_block, verify_tx_inclusion

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNVERIFIED = 0, 1, 2, 3, 4
DEFAULT_NODE = "http://127.0.0.1:26657"
DEFAULT_WALLET = "~/.ledger-wallet/wallet.json"
DEVNET_NETWORK_FILE = Path(".devnet") / "network.json"
NETWORK_FILE_NAME = "network.json"
UTXO_PAGE = 1000


class CliError(CodedError):
    """A failure to report: stable code, message for people, exit status."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILED, **details: object):
        super().__init__(code, message, **details)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- context and node selection


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
            given = [self.args.node] if isinstance(self.args.node, str) else list(self.args.node)
            urls = [node_url(u) for text in given for u in text.split(",") if u.strip()]
            return list(dict.fromkeys(urls))  # a node given twice is one node
        if os.environ.get("LEDGER_NODE"):
            return [node_url(os.environ["LEDGER_NODE"])]
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

    def verified_reader(self, store: Keystore | None) -> Reader | None:
        """What ``balance`` and ``utxos`` read through when they believe only a quorum of validators
        (``wallet.quorum``): None with one node known, ``--trust-one``, or no wallet (no pinned genesis)."""
        urls = self.node_urls()
        if store is None or len(urls) < 2 or getattr(self.args, "trust_one", False):
            return None
        if len(urls) > MAX_NODES:
            raise CliError("too-many-nodes", f"{len(urls)} nodes given; a verified read asks at most {MAX_NODES}",
                           EXIT_USAGE)
        chain = self.trusted_chain(store)
        pin = self.pin or {}

        def make_client(url: str) -> NodeClient:
            return NodeClient(url, timeout_s=self.args.timeout, transport=self.transport,
                              expect_genesis=pin.get("genesis_hash"), expect_chain=pin.get("chain_id"))

        def validators_at(height: int):
            validators = trusted_validators_at(self.client, chain, self.wallet_path, height)
            # The walk believes one node's list of set changes: the certified block of the read's height must name
            # the set it reached, so a node that hid a change needs +2/3 of the old set to forge that block.
            answer = self.client.get("/v1/blocks", **{"from": height, "to": height, "min_height": height})
            blocks = answer.get("blocks") if isinstance(answer, dict) else None
            if not blocks:
                raise VerificationError("no-certificate", f"{self.client.url} served no block {height} to check the "
                                                          f"validator set of a verified read against")
            verify_block(chain.chain_id, validators, height, blocks[0])
            return validators
        return Reader(urls, chain.chain_id, make_client, validators_at)

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


def node_url(text: str) -> str:
    """A node URL as given, with ``http://`` in front when it has no scheme (``127.0.0.1:26657``)."""
    text = text.strip()
    return text if "://" in text else f"http://{text}"


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


# --------------------------------------------------------------------------- argument values


FOREIGN_ADDRESSES = (
    ("a Bitcoin", re.compile(r"[13][1-9A-HJ-NP-Za-km-z]{25,34}|(bc1|tb1|BC1|TB1)[0-9A-Za-z]{8,87}")),
    ("an Ethereum", re.compile(r"0[xX][0-9a-fA-F]{40}")),
)
"""Addresses of other chains people paste by mistake: named, so the error says what happened."""


def parse_address_arg(text: str) -> bytes:
    try:
        return decode_address(text.strip())
    except CryptoError as exc:
        for kind, pattern in FOREIGN_ADDRESSES:
            if pattern.fullmatch(text.strip()):
                raise CliError(exc.code, f"bad address {text!r}: that looks like {kind} address; ledger addresses "
                                         f"start with lg1", EXIT_USAGE, foreign=kind.split()[-1].lower()) from None
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


# --------------------------------------------------------------------------- node reads shared by the commands


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
    validators = trusted_validators_at(ctx.client, chain, getattr(ctx, "wallet_path", None), height)
    block = ctx.client.get(f"/v1/blocks/{height}")
    return verify_tx_inclusion(chain.chain_id, validators, txid, answer, block)
