"""Verified reads: a balance or a list of unspent outputs believed only when validators holding more than 1/3 of
the voting power sign the same answer for the same height.

One node can hide or invent money in what it answers.  With several nodes
known, the wallet asks each of them the same question at the same height with
``attest=true``; each answer carries the answering node's signature
(``node.attestation``), which the wallet checks against the validator set of
that height, proven from its pinned genesis (``wallet.validator_walk``).
Identical answers are grouped, each validator's key counted once (a key that
signed two different answers counts for none), and an answer is accepted when
its signers hold more than 1/3 of the power (then at least one of them is
honest, as long as less than 1/3 is not) and no other answer does: ``agreed
by N of M``.  Otherwise ``no-quorum`` lists who said what.

``decide`` is pure (answers and a set in, an ``Agreement`` or a
``QuorumError`` out); ``ask_all`` asks the nodes in parallel; ``read_balance``
and ``read_utxos`` put it together for the commands.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from node.attestation import (
    BALANCE,
    UTXOS,
    AttestationError,
    balance_body,
    parse_attestation,
    utxos_body,
    verify_attestation,
)
from node.crypto import decode_address
from node.errors import CodedError
from node.types.transaction import OutPoint
from node.types.validators import ValidatorSet
from wallet.client import NodeClient, NodeError, NodeUnreachable, WrongGenesis

NO_QUORUM = "no-quorum"
MAX_NODES = 64
"""Nodes asked at most (``--node`` given more often is refused by the command)."""
MAX_ATTEMPTS = 5
"""Times a list of unspent outputs is asked again when the nodes' heights move under it."""
MAX_PAGES = 1000
"""Pages of unspent outputs read at most."""
UTXO_PAGE = 1000


class QuorumError(CodedError):
    """No answer is signed by more than 1/3 of the voting power (``no-quorum``): ``details`` says who said what."""


@dataclass(frozen=True)
class NodeAnswer:
    """What one node answered to one question, and whether its word counts."""

    url: str
    """The node asked."""
    height: int | None
    """The height it answered for (None: it gave no usable answer)."""
    body: bytes
    """The canonical bytes of its answer (what its attestation signs); empty without an answer."""
    value: object
    """The answer itself (a balance, a page), for the caller."""
    signer: bytes | None
    """The public key whose valid attestation it carries (None: none, or one that does not verify)."""
    problem: str | None
    """Why it does not count (unreachable, error, attestation missing or false); None when it does."""


@dataclass(frozen=True)
class Agreement:
    """An answer signed by more than 1/3 of the voting power of its height."""

    answer: NodeAnswer
    """One of the agreeing answers (they are byte-identical)."""
    signers: tuple[str, ...]
    """Names of the validators that signed it."""
    signed_power: int
    """Their voting power."""
    total_power: int
    """The power of the whole set at that height."""
    validators: int
    """How many validators the set has (the M of ``agreed by N of M``)."""
    asked: int
    """How many nodes were asked."""

    def summary(self) -> str:
        return (f"agreed by {len(self.signers)} of {self.validators} validators ({self.signed_power} of "
                f"{self.total_power} voting power; {self.asked} nodes asked)")

    def to_json(self) -> dict:
        return {"agreed_by": len(self.signers), "of": self.validators, "signers": list(self.signers),
                "signed_power": self.signed_power, "total_power": self.total_power, "asked": self.asked}


def decide(answers: list[NodeAnswer], validators: ValidatorSet, height: int) -> Agreement:
    """The one answer for ``height`` whose signers in ``validators`` hold more than 1/3 of its power."""
    by_key = {v.public_key: v for v in validators}
    groups: dict[bytes, set[bytes]] = {}
    for a in answers:
        if a.problem is None and a.height == height and a.signer in by_key:
            groups.setdefault(a.body, set()).add(a.signer)
    twice = {k for body, keys in groups.items() for k in keys if any(k in o for b, o in groups.items() if b != body)}
    total = sum(v.power for v in validators)
    passing = []
    for body, keys in groups.items():
        counted = keys - twice
        power = sum(by_key[k].power for k in counted)
        if 3 * power > total:
            passing.append((body, counted, power))
    if len(passing) != 1:
        raise QuorumError(NO_QUORUM, _no_quorum_message(answers, by_key, total, height, len(passing)),
                          said=said_by(answers, by_key))
    body, counted, power = passing[0]
    first = next(a for a in answers if a.body == body and a.signer in counted and a.height == height)
    names = tuple(sorted(by_key[k].name or by_key[k].public_key.hex()[:16] for k in counted))
    return Agreement(first, names, power, total, len(by_key), len(answers))


def said_by(answers: list[NodeAnswer], by_key: dict) -> list[dict]:
    """Who said what, for the error: each node's height, answer and signer (or its problem)."""
    out = []
    for a in answers:
        signer = by_key.get(a.signer)
        out.append({"node": a.url, "height": a.height, "answer": _show(a.value), "problem": a.problem,
                    "validator": (signer.name or a.signer.hex()) if signer is not None and a.signer is not None
                    else None, "power": signer.power if signer is not None else 0})
    return out


def _show(value: object) -> object:
    if isinstance(value, dict):
        return f"{len(value.get('utxos', []))} outputs"
    return value


def _no_quorum_message(answers: list[NodeAnswer], by_key: dict, total: int, height: int, passing: int) -> str:
    lines = []
    for entry in said_by(answers, by_key):
        who = entry["validator"] or "not a validator"
        what = entry["problem"] or f"{entry['answer']} at height {entry['height']}"
        lines.append(f"{entry['node']} ({who}, power {entry['power']}): {what}")
    why = ("two different answers are each signed by more than 1/3 of the voting power (more than 1/3 lies)"
           if passing > 1 else "no answer is signed by more than 1/3 of the voting power")
    return (f"the nodes do not agree at height {height}: {why} of {total}; " + "; ".join(lines)
            + ". Ask more validators with --node, or take one node's word with --trust-one")


# --------------------------------------------------------------------------- asking


def ask_all(urls: list[str], ask: Callable[[str], NodeAnswer]) -> list[NodeAnswer]:
    """``ask`` each node in parallel; a node that fails becomes an answer with its problem."""
    def guarded(url: str) -> NodeAnswer:
        try:
            return ask(url)
        except WrongGenesis:
            raise
        except NodeUnreachable as exc:
            return NodeAnswer(url, None, b"", None, None, f"unreachable: {exc.message}")
        except NodeError as exc:
            return NodeAnswer(url, None, b"", None, None, f"refused: {exc.code}: {exc.message}")
        except (AttestationError, KeyError, TypeError, ValueError, httpx.HTTPError) as exc:
            return NodeAnswer(url, None, b"", None, None, f"unusable answer: {exc}")
    with ThreadPoolExecutor(max_workers=min(len(urls), 16)) as pool:
        futures = [pool.submit(guarded, url) for url in urls]
        results, wrong = [], None
        for future in futures:
            try:
                results.append(future.result())
            except WrongGenesis as exc:  # another network's node: never believed, and said so if nothing else is
                wrong = exc
                results.append(NodeAnswer(exc.url, None, b"", None, None, "runs another genesis"))
    if wrong is not None and not any(r.problem is None for r in results):
        raise wrong
    return results


def attested(url: str, chain_id: str, kind: str, height: int, address: bytes, body: bytes, value: object,
             answer: dict) -> NodeAnswer:
    """The answer of ``url`` with its attestation checked (a false one makes it a problem, not a vote)."""
    try:
        attestation = parse_attestation(answer.get("attestation"))
    except AttestationError as exc:
        return NodeAnswer(url, height, body, value, None, exc.message)
    if not verify_attestation(attestation, chain_id, kind, height, address, body):
        return NodeAnswer(url, height, body, value, None, "its attestation does not verify (forged or altered)")
    return NodeAnswer(url, height, body, value, attestation.validator, None)


@dataclass
class Reader:
    """What every verified read needs: the nodes, how to reach them and the chain they must run."""

    urls: list[str]
    """The nodes to ask."""
    chain_id: str
    """The pinned chain."""
    make_client: Callable[[str], NodeClient]
    """A client for one node (checks its genesis against the pin)."""
    validators_at: Callable[[int], ValidatorSet]
    """The proven validator set of a height."""

    def _client(self, url: str) -> NodeClient:
        return self.make_client(url)

    def common_height(self, min_height: int | None) -> int:
        """The height to read at, at least ``min_height``: the committed height that the nodes above a third of
        those answering have reached (each asked in parallel).  Neither one node reporting a low height (a stale
        read) nor one reporting a far one (no read at all) chooses it; a node behind it waits (``min_height``)."""
        def ask(url: str) -> NodeAnswer:
            with self._client(url) as client:
                status = client.get("/v1/status")
            return NodeAnswer(url, int(status["height"]), b"", None, None, None)
        heights = [a.height for a in ask_all(self.urls, ask) if a.problem is None and a.height is not None]
        if not heights:
            raise NodeUnreachable(self.urls, "none of the nodes answered")
        heights.sort(reverse=True)
        return max(heights[len(heights) // 3], min_height or 0)

    def balance(self, address: str, min_height: int | None) -> tuple[int, Agreement]:
        height = self.common_height(min_height)
        account = decode_address(address)

        def ask(url: str) -> NodeAnswer:
            with self._client(url) as client:
                answer = client.get(f"/v1/addresses/{address}/balance", height=height, attest="true",
                                    min_height=height)
            amount = int(answer["balance"])
            if answer.get("height") != height or not 0 <= amount < 2**64:
                return NodeAnswer(url, answer.get("height"), b"", amount, None, "answered another question")
            return attested(url, self.chain_id, BALANCE, height, account, balance_body(amount), amount, answer)
        answers = ask_all(self.urls, ask)
        agreement = decide(answers, self.validators_at(max(height, 1)), height)
        return int(agreement.answer.value), agreement  # type: ignore[call-overload]

    def utxos(self, address: str, min_height: int | None) -> tuple[list[dict], int, Agreement]:
        """Every unspent output of ``address``, page by page, each page agreed at one height (asked again, at most
        ``MAX_ATTEMPTS`` times, when the nodes' heights move between them)."""
        account = decode_address(address)
        last: QuorumError | None = None
        for _ in range(MAX_ATTEMPTS):
            height = self.common_height(min_height)
            try:
                return self._utxos_at(address, account, height)
            except _HeightMoved as moved:
                last = moved.error
                min_height = max(min_height or 0, moved.height)
        assert last is not None
        raise last

    def _utxos_at(self, address: str, account: bytes, height: int) -> tuple[list[dict], int, Agreement]:
        items: list[dict] = []
        after: str | None = None
        agreement: Agreement | None = None
        for _ in range(MAX_PAGES):
            answers = ask_all(self.urls, functools.partial(self._ask_page, address=address, account=account,
                                                           cursor=after, height=height))
            try:
                agreement = decide(answers, self.validators_at(max(height, 1)), height)
            except QuorumError as exc:
                moved = [a.height for a in answers if a.problem is None and a.height is not None and a.height > height]
                if moved:
                    raise _HeightMoved(exc, min(moved)) from None
                raise
            page = agreement.answer.value
            assert isinstance(page, dict)
            items += page["utxos"]
            # The next page starts after the last output of the agreed page, never at a cursor a node supplies:
            # the attestation covers the page and whether more follow, not the node's "next" text.
            if not page.get("next") or not page["utxos"]:
                return items, height, agreement
            last = page["utxos"][-1]
            after = f"{last['txid']}:{int(last['index'])}"
        raise QuorumError(NO_QUORUM, f"more than {MAX_PAGES} pages of unspent outputs")


    def _ask_page(self, url: str, *, address: str, account: bytes, cursor: str | None, height: int) -> NodeAnswer:
        with self._client(url) as client:
            page = client.get(f"/v1/addresses/{address}/utxos", limit=UTXO_PAGE, after=cursor, attest="true",
                              height=height, min_height=height)
        return _page_answer(url, self.chain_id, account, cursor, page)


class _HeightMoved(Exception):
    def __init__(self, error: QuorumError, height: int):
        super().__init__(error.message)
        self.error = error
        self.height = height


def _page_answer(url: str, chain_id: str, account: bytes, cursor: str | None, page: dict) -> NodeAnswer:
    after = None
    if cursor is not None:
        txid, _, index = cursor.partition(":")
        after = OutPoint(bytes.fromhex(txid), int(index))
    listed = [(OutPoint(bytes.fromhex(u["txid"]), int(u["index"])), int(u["amount"]), int(u.get("height", 0)))
              for u in page["utxos"]]
    body = utxos_body(after, listed, bool(page.get("next")))
    height = int(page["height"])
    return attested(url, chain_id, UTXOS, height, account, body, page, page)
