"""REST routes of an address: its balance, its unspent outputs and its transaction history, under
``/v1/addresses/{address}/``.

* ``GET .../balance?height=H&attest=true``: the balance now or at a past height;
* ``GET .../utxos?after=txid:index&height=H&attest=true``: a page of its unspent outputs;
* ``GET .../txs?before=height:index``: a page of the transactions that touched it, newest first;

and ``GET /v1/balances?addresses=A,B,...&height=H``: the balances of many addresses at one height, in one answer.

With ``attest=true`` the balance and the outputs carry this node's signed attestation of the answer
(``node.attestation``), which the wallet's verified reads check against a quorum of nodes (``wallet.quorum``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query

from node.address_history import HistoryError, read_address_history
from node.api import models as m
from node.api.views import amount_json, utxo_json
from node.attestation import BALANCE, UTXOS, balance_body, utxos_body
from node.crypto import encode_address
from node.types.transaction import OutPoint

MAX_PAGE = 1000
"""The most items one page of a list answer holds (an address's outputs or history, the mempool's transactions)."""
MAX_BALANCES = 100
"""The most addresses one ``GET /v1/balances`` asks about (their list fits a URL: 100 addresses are 4.3 KB)."""


def add_address_routes(app: FastAPI, node, *, guard, api_error, returns, parse_address, parse_hex, check_not_pruned,
                       sign_answer) -> None:
    """Register the ``/v1/addresses/{address}/...`` routes on ``app`` for ``node``, with the REST layer's parts:
    ``guard`` the ``min_height`` dependency, ``api_error`` the REST error type (status, code, message),
    ``returns`` the route arguments of a JSON answer, ``parse_address`` and ``parse_hex`` its parsers (400 on bad
    input), ``check_not_pruned`` (410 below the earliest height kept) and ``sign_answer`` (this node's
    attestation of an answer)."""

    def check_height(height: int | None) -> int:
        """The committed height, after checking that a past ``height`` asked for is one this node can answer at:
        404 height-not-found above the committed height, 410 pruned below the earliest kept."""
        top = node.store.height
        if height is not None and height > top:
            raise api_error(404, "height-not-found", f"height {height} is above the node's height {top}", height=top)
        if height is not None:
            check_not_pruned(height)
        return top

    def balances_at(accounts: list[bytes], height: int | None) -> tuple[int, list[int]]:
        """(the height answered, the balance of each of ``accounts`` there): now, or at a past ``height`` (404 above
        the committed height, 410 below the earliest kept, also when pruning passed it while these were read)."""
        top = check_height(height)
        if height is None:  # (no await below: no commit lands between the height and the reads)
            return top, [node.store.balance(account) for account in accounts]
        amounts = [node.store.balance_at(account, height) for account in accounts]
        check_not_pruned(height)  # pruning runs in a worker thread: reads it overtook would be of a pruned height
        return height, amounts

    @app.get("/v1/addresses/{address}/balance", tags=["addresses"], dependencies=[guard],
             summary="An address's balance", **returns(m.Balance, 400, 404, 410, 503))
    async def balance(address: str, height: Annotated[int | None, Query(
            ge=0, description="balance at this height (default: the committed height)")] = None,
            attest: Annotated[bool, Query(description="add this node's signed attestation of the answer")] = False):
        """The balance of `address` now or at a past `height`; 404 height-not-found above the committed height.
        With `attest=true` the answer carries `attestation` {validator, signature}: this node's key's signature over
        the chain, height, address and balance (see the README's verified reads)."""
        account = parse_address(address)
        at, [amount] = balances_at([account], height)
        body = {"address": encode_address(account), "height": at, "balance": amount, **{"amount": amount_json(amount)}}
        if attest:
            body["attestation"] = sign_answer(BALANCE, at, account, balance_body(amount))
        return body

    @app.get("/v1/balances", tags=["addresses"], dependencies=[guard],
             summary="The balances of many addresses at one height", **returns(m.Balances, 400, 404, 410, 503))
    async def balances(addresses: Annotated[str, Query(description=(
            f"comma-separated addresses, at most {MAX_BALANCES}; the answer keeps their order"))],
            height: Annotated[int | None, Query(
                ge=0, description="balances at this height (default: the committed height)")] = None):
        """The balances of every address in `addresses` at one height (now, or a past `height`), as one answer: what
        `GET /v1/addresses/{address}/balance` says of each, without a request per address. 400 `too-many-addresses`
        beyond the limit, or the bad address's own code; 404 height-not-found above the committed height; 410 pruned
        below the earliest height kept."""
        names = addresses.split(",", MAX_BALANCES)
        if len(names) > MAX_BALANCES:
            raise api_error(400, "too-many-addresses",
                            f"{addresses.count(',') + 1} addresses asked, at most {MAX_BALANCES} per request: "
                            "split the list")
        accounts = [parse_address(name) for name in names]
        at, amounts = balances_at(accounts, height)
        return {"height": at, "balances": [{"address": encode_address(account), "balance": amount,
                                             "amount": amount_json(amount)}
                                            for account, amount in zip(accounts, amounts, strict=True)]}

    @app.get("/v1/addresses/{address}/utxos", tags=["addresses"], dependencies=[guard],
             summary="An address's unspent outputs", **returns(m.Utxos, 400, 404, 410, 503))
    async def utxos(address: str, limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
                    after: Annotated[str | None,
                                     Query(description="txid:index of the last item of the previous page")] = None,
                    attest: Annotated[bool, Query(description="add this node's signed attestation")] = False,
                    height: Annotated[int | None, Query(ge=0, le=2**63 - 1, description=(
                        "answer as of this height when the address's outputs have not changed since (else as of "
                        "the committed height, which the answer's height says)"))] = None):
        """A page of the unspent outputs of `address`; pass `next` as `after` for the following page. With
        `attest=true` the answer carries `attestation`, this node's signature over the chain, height, address and
        the page (its cursor, outputs and whether another page follows). With `height`, the page is said to be
        that height's when no transaction touched the address after it (404 height-not-found above the committed
        height), so nodes at different tips can sign the same answer."""
        account = parse_address(address)
        cursor = None
        if after is not None:
            txid, _, index = after.partition(":")
            if not (index.isascii() and index.isdigit()) or int(index) >= 2**32:
                raise api_error(400, "bad-cursor", "after must be txid:index")
            cursor = OutPoint(parse_hex(txid, "after txid", 32), int(index))
        top = check_height(height)  # (below the earliest height, the history cannot say the outputs were unchanged)
        last_change = node.store.history_of(account, 1)
        unchanged = height is not None and (not last_change or last_change[0].height <= height)
        height = height if unchanged and height is not None else top
        items = node.store.utxos_of(account, limit, cursor)
        body = {"address": encode_address(account), "height": height,
                "utxos": [utxo_json(op, entry) for op, entry in items]}
        body["next"] = f"{items[-1][0].txid.hex()}:{items[-1][0].index}" if len(items) == limit else None
        if attest:
            page = utxos_body(cursor, [(op, e.amount, e.height) for op, e in items], body["next"] is not None)
            body["attestation"] = sign_answer(UTXOS, height, account, page)
        return body

    @app.get("/v1/addresses/{address}/txs", tags=["addresses"], dependencies=[guard],
             summary="An address's transaction history", **returns(m.History, 400, 410, 503))
    async def history(address: str, limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
                      before: Annotated[
                          str | None, Query(description="height:index of the last item of the previous page")] = None):
        """A page of the transactions (and genesis and fee outputs) that touched `address`, newest first, each with
        its block time, what it paid the address (`received`), what of the address's it spent (`sent`), the `net`,
        its `fee` and the other addresses (`counterparties`); pass `next` as `before` for the following page. 410
        pruned when a transaction it needs is no longer stored here."""
        account = parse_address(address)
        cursor = None
        if before is not None:
            h, _, i = before.partition(":")
            if not (h.isascii() and i.isascii() and h.isdigit() and i.isdigit()) or int(h) >= 2**63 \
                    or int(i) >= 2**32:
                raise api_error(400, "bad-cursor", "before must be height:index")
            cursor = (int(h), int(i))
        try:
            items = read_address_history(node.store, account, limit, cursor)
        except HistoryError as exc:
            raise api_error(410 if exc.code == "pruned" else 503, exc.code, exc.message) from None
        body = {"address": encode_address(account), "height": node.store.height,
                "txs": [{"height": e.height, "index": e.index, "txid": e.txid.hex(), "kind": e.kind,
                         "time_ms": e.time_ms, "received": e.received, "sent": e.sent, "net": e.net, "fee": e.fee,
                         "counterparties": [encode_address(a) for a in e.counterparties]} for e in items]}
        body["next"] = f"{items[-1].height}:{items[-1].index}" if len(items) == limit else None
        return body
