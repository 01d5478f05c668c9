"""``send``: pay an amount to an address, and with ``--wait`` wait for the commit and verify it."""

from __future__ import annotations

import time

from node.crypto import decode_address, encode_address
from node.types.transaction import TxOutput, sign_transaction
from wallet.amounts import amount_json, describe_amount
from wallet.client import NodeError
from wallet.coins import SelectionError, select_coins
from wallet.context import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Context,
    fetch_and_verify,
    fetch_coins,
    parse_address_arg,
    parse_amount_arg,
    verified_json,
)
from wallet.trust import remember_height

COMMIT_WAIT_S = 60.0


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
