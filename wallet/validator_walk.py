"""Which validators make a block final at any height, proven from the pinned genesis alone.

The set changes only by committed reconfiguration inputs, and every header
names the set of the next height (``next_validators_hash``).  So a wallet
that trusts the set S of height h trusts the set of height c (the next
height where it changes) once it has checked header c-1: signed by more
than 2/3 of S (S is still the set of c-1), naming the served set of c as
its next.  The wallet walks these headers from genesis, asking a node where
the set changed (``GET /v1/validators/changes``) but believing only the
certificates; a node that hides a change is caught when the block it
serves names a set the wallet did not reach.  What the wallet has checked
is kept in its chain file (``validator_sets``), so each change is walked
once.
"""

from __future__ import annotations

from pathlib import Path

from node.types.validators import Validator, ValidatorSet
from wallet.client import NodeClient
from wallet.trust import TrustedChain, read_checked_sets, write_checked_sets
from wallet.verify import VerificationError, verify_block

MAX_CHANGES_PER_WALK = 100_000
CHANGES_PAGE = 1000
"""Changes ``GET /v1/validators/changes`` lists at most per answer."""


def parse_validator_set(answer: object, where: str) -> ValidatorSet:
    """The set in a ``GET /v1/validators`` answer (keys and powers; names are labels)."""
    try:
        assert isinstance(answer, dict)
        return ValidatorSet(Validator(str(v.get("name", "")), bytes.fromhex(v["public_key"]), int(v["power"]))
                            for v in answer["validators"])
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise VerificationError("malformed-answer", f"{where}: not a validator set: {exc}") from None


def _changes(client: NodeClient, start: int, height: int):
    """The heights from ``start`` to ``height`` where the node says the set changed, page after page (what is
    believed of them is decided by the certificates)."""
    for _ in range(MAX_CHANGES_PER_WALK // CHANGES_PAGE + 1):
        answer = client.get("/v1/validators/changes", **{"from": start})
        changes = answer.get("changes") if isinstance(answer, dict) else None
        if not isinstance(changes, list):
            raise VerificationError("malformed-answer", f"{client.url} did not list the validator-set changes")
        for entry in changes:
            change = entry.get("height") if isinstance(entry, dict) else None
            if not isinstance(change, int) or change < start:
                continue
            if change > height:
                return
            yield change
            start = change + 1
        if len(changes) < CHANGES_PAGE:
            return
    raise VerificationError("malformed-answer", f"{client.url} lists more than {MAX_CHANGES_PER_WALK} set changes")


def trusted_validators_at(client: NodeClient, chain: TrustedChain, wallet_path: Path | None,
                          height: int) -> ValidatorSet:
    """The set of ``height``, reached from the pinned genesis through certified headers (and remembered)."""
    checked = read_checked_sets(wallet_path, chain) if wallet_path is not None else []
    known = [(1, chain.validators), *checked]
    start, validators = max(((h, s) for h, s in known if h <= height), key=lambda item: item[0])
    walked = False
    for change in _changes(client, start + 1, height):
        before = verify_block(chain.chain_id, validators, change - 1, client.get(f"/v1/blocks/{change - 1}"))
        served = parse_validator_set(client.get("/v1/validators", height=change),
                                     f"the validator set of height {change} from {client.url}")
        if served.hash != before.header.next_validators_hash:
            raise VerificationError("forged-validators", f"{client.url} served a validator set for height {change} "
                                                         f"that block {change - 1} does not name as its next")
        validators, walked = served, True
        checked.append((change, served))
    if walked and wallet_path is not None:
        write_checked_sets(wallet_path, chain, checked)
    return validators
