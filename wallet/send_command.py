"""``send``: pay an amount to an address, and with ``--wait`` wait for the commit and verify it.

``--all`` sends everything minus the fee, ``--subtract-fee`` takes the fee out of the amount, ``--dry-run``
builds and signs without submitting (``--hex`` prints the signed transaction's bytes).  The fee guard and the
warnings are in ``wallet.fees``.  With ``--wait``, the transaction is first handed to a node's mempool, then
awaited on the node's event stream (``GET /v1/events``; polled for on a node without one), then fetched with its
proof and verified; a wait that runs out says which node accepted it and exits 1 (``not-committed-yet``).
"""

from __future__ import annotations

import time

from node.crypto import decode_address, encode_address
from node.types.transaction import TxOutput, sign_transaction
from wallet.amounts import amount_json, describe_amount, plural
from wallet.client import NodeError, NodeUnreachable
from wallet.context import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Context,
    fetch_and_verify,
    fetch_coins,
    note,
    parse_address_arg,
    parse_amount_arg,
    verified_json,
)
from wallet.fees import check_fee, choose, warnings_for
from wallet.trust import remember_height
from wallet.watch_command import wait_for_txid

COMMIT_WAIT_S = 60.0
POLL_S = 0.25


def cmd_send(ctx: Context) -> int:
    args = ctx.args
    if args.all and args.amount is not None:
        raise CliError("bad-usage", "give either AMOUNT or --all, not both", EXIT_USAGE)
    if not args.all and args.amount is None:
        raise CliError("bad-usage", "say how much to send: AMOUNT, or --all for everything minus the fee", EXIT_USAGE)
    if args.all and args.subtract_fee:
        raise CliError("bad-usage", "--all already takes the fee out of what is sent; drop --subtract-fee",
                       EXIT_USAGE)
    if args.dry_run and args.wait:
        raise CliError("bad-usage", "--dry-run submits nothing, so there is nothing to --wait for", EXIT_USAGE)
    store = ctx.keystore()
    recipient = parse_address_arg(args.to)
    amount = None if args.all else parse_amount_arg(args.amount, args.base_units)
    fee = parse_amount_arg(args.fee, args.base_units, allow_zero=True) if args.fee is not None else None
    key = store.unlock(ctx.passphrase(store))
    chain = ctx.trusted_chain(store)
    coins, coins_height = fetch_coins(ctx, store.address, ctx.min_height(store))
    selection = choose(coins, amount, fee=fee, fee_rate=args.fee_rate, sweep=args.all,
                       subtract_fee=args.subtract_fee)
    check_fee(selection, args.force)
    own = decode_address(store.address)
    warnings = warnings_for(selection, recipient, own)
    if not ctx.json:
        for warning in warnings:
            note(f"warning: {warning}")
    outputs = [TxOutput(recipient, selection.amount)]
    if selection.change:
        outputs.append(TxOutput(own, selection.change))
    tx = sign_transaction(chain.chain_id, [(c.outpoint, key) for c in selection.inputs], outputs)
    txid = tx.txid.hex()
    body = {"tx": tx.encoded.hex(), "chain_id": chain.chain_id}
    result: dict = {"txid": txid, "to": encode_address(recipient), "amount": amount_json(selection.amount),
                    "fee": amount_json(selection.fee), "change": amount_json(selection.change),
                    "inputs": len(selection.inputs), "size": tx.size, "node": None, "warnings": warnings}
    if args.hex or args.dry_run:
        result["hex"] = tx.encoded.hex()
    verb = "would send" if args.dry_run else "sent"
    lines = [f"{verb} {describe_amount(selection.amount)} to {encode_address(recipient)}",
             f"fee {describe_amount(selection.fee)}, change {describe_amount(selection.change)}, "
             f"{plural(len(selection.inputs), 'input')}, {tx.size} bytes",
             f"txid {txid}"]
    if args.hex:
        lines.append(f"hex {tx.encoded.hex()}")
    if args.dry_run:
        result["status"] = "not-submitted"
        if args.hex and not ctx.json:  # stdout holds the bytes and the txid only, for scripts
            for line in lines[:2]:
                note(line)
            note("not submitted (--dry-run); POST it as {\"tx\": HEX} to /v1/txs when ready")
            lines = [tx.encoded.hex(), txid]
        else:
            lines.append("not submitted (--dry-run)")
        ctx.emit(result, lines)
        return EXIT_OK
    answer = ctx.client.post("/v1/txs", body)
    accepted_by = ctx.client.url
    result.update(status=answer.get("status", "pending"), node=accepted_by)
    if not args.wait:
        lines.append(f"status {result['status']} (accepted by {accepted_by}); check it with "
                     f"`ledger-wallet tx {txid}`")
        ctx.emit(result, lines)
        return EXIT_OK
    deadline = time.monotonic() + args.wait_timeout
    located = (answer if answer.get("status") == "committed"
               else wait_committed(ctx, store.address, tx.txid, coins_height, deadline))
    if located is None:
        message = (f"accepted by {accepted_by}, not committed yet after {args.wait_timeout:g} s (are enough "
                   f"validators up?); txid {txid}: check it later with `ledger-wallet tx {txid}`")
        result["error"] = {"code": "not-committed-yet", "message": message}
        ctx.emit(result, lines)
        if not ctx.json:
            note(f"error: {message}")
        return EXIT_FAILED
    if "proof" not in located:  # the submit answer names the block only: the proof comes with GET /v1/txs/TXID
        located = poll_committed(ctx, tx.txid, deadline, located.get("height")) or located
    verified = fetch_and_verify(ctx, chain, tx.txid, located)
    remember_height(store.path, chain, verified.block.header.height)
    result.update(status="committed", node=ctx.client.url, **verified_json(verified))
    lines += [f"committed in block {verified.block.header.height} ({verified.block.block_hash.hex()})",
              verified.summary()]
    ctx.emit(result, lines)
    return EXIT_OK


def wait_committed(ctx: Context, address: str, txid: bytes, after_height: int, deadline: float) -> dict | None:
    """Where ``txid`` committed, from the node's event stream of ``address`` after ``after_height`` (the height
    the coins were read at); a node without the stream (an error answer) is polled instead."""
    try:
        return wait_for_txid(ctx.client, address, txid, after_height, deadline)
    except NodeError:
        return poll_committed(ctx, txid, deadline)


def poll_committed(ctx: Context, txid: bytes, deadline: float, height: int | None = None) -> dict | None:
    """The node's committed answer for ``txid`` (with its merkle proof), or None when ``deadline`` passes first.

    A node that cannot be reached meanwhile is asked again (another of ``--node`` is tried each time)."""
    while True:
        try:
            answer = ctx.client.get(f"/v1/txs/{txid.hex()}", min_height=height)
            if answer.get("status") == "committed":
                return answer
        except NodeError as exc:
            if exc.code not in ("tx-not-found", "height-not-reached"):
                raise
        except NodeUnreachable:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)
