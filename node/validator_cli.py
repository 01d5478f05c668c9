"""``ledger-node validator join|approve|quit``: an operator changes the validator set with its node's key.

Each command signs with the key in the node's home and submits over the
node's REST API (``POST /v1/validators/inputs``); the node checks the record
as the next block would, pools it and relays it to its peers.

* ``join`` signs a JOIN request for this node's key (proof of possession)
  and prints its id; validators holding more than 2/3 of the power then
  approve it, and it applies two heights after the approval that completes
  the quorum.  The node should have caught up first (it follows as a full
  node until then).
* ``approve REQUEST_ID`` approves a request this node knows (on chain or in
  its pool); ``approve --set-power KEY_OR_ADDRESS --power P`` proposes and
  approves a power change (0 removes the validator).
* ``quit`` takes this node's key out of the set (no approval needed); the
  process keeps running as a full node.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from node.config import KEY_FILE, ConfigError, load_config
from node.crypto import CryptoError, SigningKey, address_of, decode_address
from node.home import HomeError, load_key_file
from node.types.reconfig import (
    ChangeRequest,
    PoolItem,
    decode_pool_item,
    power_request,
    sign_approval,
    sign_join,
    sign_quit,
)

DEFAULT_EXPIRES_IN = 1000
"""Heights a signed record stays valid for by default (the ledger allows up to 10,000)."""


class CommandError(Exception):
    """What the operator must fix; printed as ``error: ...``, exit 1."""


def call_node(url: str, path: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method="GET" if body is None else "POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": {"code": "http-error", "message": str(exc)}}
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise CommandError(f"no answer from the node at {url} ({getattr(exc, 'reason', exc)}); is it running? "
                           f"(`ledger-node start --home DIR`)") from None


def _node_url(args: argparse.Namespace) -> str:
    if args.node:
        return args.node if "://" in args.node else f"http://{args.node}"
    try:
        config = load_config(Path(args.home))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    return f"http://{config.host}:{config.port}"


def _private_key(args: argparse.Namespace) -> bytes:
    try:
        return load_key_file(Path(args.home) / KEY_FILE).private_key
    except (HomeError, OSError, ValueError) as exc:
        raise CommandError(f"cannot read the node key in {args.home}: {exc}") from None


def submit_record(url: str, item: PoolItem) -> dict:
    status, answer = call_node(url, "/v1/validators/inputs", {"input": item.encoded.hex()})
    if status != 202:
        error = answer.get("error", {})
        raise CommandError(f"the node refused it: {error.get('code')}: {error.get('message')}")
    return answer


def node_status(url: str) -> dict:
    status, answer = call_node(url, "/v1/status")
    if status != 200:
        raise CommandError(f"the node answered {status} to GET /v1/status")
    return answer


def _find_request(url: str, request_id: str) -> ChangeRequest:
    status, answer = call_node(url, "/v1/validators/pending")
    if status != 200:
        raise CommandError(f"the node answered {status} to GET /v1/validators/pending")
    wanted = request_id.lower()
    for entry in (*answer.get("pending", []), *answer.get("pool", [])):
        view = entry.get("request", entry)  # a pooled approval carries its request
        if view.get("id") == wanted and view.get("encoded"):
            item = decode_pool_item(bytes.fromhex(view["encoded"]))
            if isinstance(item, ChangeRequest) and item.id.hex() == wanted:
                return item
    raise CommandError(f"the node knows no request {request_id}: has the joiner run `ledger-node validator join` "
                       f"on a node connected to this one? (GET /v1/validators/pending lists what it knows)")


def membership_since(url: str, address: str) -> int:
    """The height the membership of ``address`` in the set of the next height began (what its quit names)."""
    status, answer = call_node(url, "/v1/validators")
    if status != 200:
        raise CommandError(f"the node answered {status} to GET /v1/validators")
    for v in answer.get("validators", []):
        if v.get("address") == address:
            return int(v.get("since", 1))
    raise CommandError(f"{address} is not a validator at the next height: nothing to quit")


def _validator_key(url: str, who: str) -> bytes:
    """A current validator's public key, from its address or its key's hex."""
    status, answer = call_node(url, "/v1/validators")
    if status != 200:
        raise CommandError(f"the node answered {status} to GET /v1/validators")
    try:
        wanted = address_of(bytes.fromhex(who)) if len(who) == 66 else None
    except (ValueError, CryptoError):
        wanted = None
    if wanted is None:
        try:
            decode_address(who)
        except CryptoError as exc:
            raise CommandError(f"{who!r} is neither a validator address nor a public key: {exc}") from None
        wanted = who
    for v in answer["validators"]:
        if v["address"] == wanted:
            return bytes.fromhex(v["public_key"])
    raise CommandError(f"{who} is not a validator at the next height")


def run(args: argparse.Namespace) -> dict:
    url = _node_url(args)
    key = _private_key(args)
    status = node_status(url)
    chain_id, expires = status["chain_id"], int(status["height"]) + args.expires_in
    if args.action == "join":
        if status.get("catching_up"):
            raise CommandError(f"the node is catching up (height {status['height']}); a node joins once it follows "
                               f"the chain: wait until `ledger-node status` says catching up: no")
        request = sign_join(chain_id, key, args.power, args.name or "", expires)
        answer = submit_record(url, request)
        return {**answer, "request_id": request.id.hex(), "expires": expires,
                "next": f"validators approve it: ledger-node validator approve --home THEIR_HOME {request.id.hex()}"}
    if args.action == "quit":
        since = membership_since(url, address_of(SigningKey(key).public_key))
        return {**submit_record(url, sign_quit(chain_id, key, expires, since)), "expires": expires}
    if getattr(args, "set_power", None) is not None:
        if args.power is None:
            raise CommandError("--set-power needs --power P (0 removes the validator)")
        request = power_request(_validator_key(url, args.set_power), args.power, expires)
    elif getattr(args, "request_id", None):
        request = _find_request(url, args.request_id)
    else:
        raise CommandError("approve what? give a REQUEST_ID, or --set-power KEY_OR_ADDRESS --power P")
    answer = submit_record(url, sign_approval(chain_id, key, request))
    return {**answer, "request_id": request.id.hex()}


def cmd_validator(args: argparse.Namespace) -> int:
    try:
        answer = run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"{args.action}: {answer.get('status')} (id {answer.get('id')})")
        if "request_id" in answer:
            print(f"request {answer['request_id']}")
        if "next" in answer:
            print(answer["next"])
    return 0


def add_validator_parser(sub) -> None:
    p = sub.add_parser("validator", help="join, approve or quit the validator set with this node's key")
    actions = p.add_subparsers(dest="action", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--home", required=True, help="the node's home: its key signs, its REST API receives")
        q.add_argument("--node", help="submit to this REST URL instead of the home's own node")
        q.add_argument("--expires-in", dest="expires_in", type=int, default=DEFAULT_EXPIRES_IN,
                       help=f"heights the signed record stays valid for (default {DEFAULT_EXPIRES_IN}, at most "
                            f"10000)")
        q.add_argument("--json", action="store_true", help="the node's answer as JSON")
        q.set_defaults(func=cmd_validator)

    q = actions.add_parser("join", help="ask for this node's key to become a validator (signs a JOIN request)")
    q.add_argument("--power", type=int, default=10, help="the voting power asked for (default 10)")
    q.add_argument("--name", help="the name the validator gets in the set (default: none)")
    common(q)
    q = actions.add_parser("approve", help="approve a request (or propose and approve a power change)")
    q.add_argument("request_id", nargs="?", help="the id of the request (`validator join` printed it)")
    q.add_argument("--set-power", dest="set_power", metavar="KEY_OR_ADDRESS",
                   help="propose and approve a power change of this validator (with --power)")
    q.add_argument("--power", type=int, help="with --set-power: the new power (0 removes the validator)")
    common(q)
    q = actions.add_parser("quit", help="take this node's key out of the validator set (no approval needed)")
    common(q)
