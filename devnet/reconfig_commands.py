"""``ledger-devnet join NODE`` and ``ledger-devnet quit NODE``: change a running devnet's validator set.

``join`` signs a JOIN request with NODE's own key (proof of possession), then
an approval with the key of every validator of the current set whose home
is in this devnet (validators holding more than 2/3 of the power are
needed), each submitted to that validator's own node, exactly as operators
would with ``ledger-node validator join|approve``.  It waits until NODE is
in the set and has signed a block.  ``quit`` signs NODE's quit and waits
until NODE is out of the set; its process keeps running as a full node.
Both are the node's real REST and p2p paths: nothing here writes a store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from devnet.cli_common import _specs, fail
from devnet.cluster import NodeSpec, find_node
from node.config import KEY_FILE
from node.crypto import address_of
from node.home import HomeError, load_key_file
from node.types.reconfig import sign_approval, sign_join, sign_quit
from node.validator_cli import DEFAULT_EXPIRES_IN, CommandError, call_node, membership_since, submit_record

POLL_S = 0.2


def _key(spec: NodeSpec) -> bytes:
    try:
        return load_key_file(spec.home / KEY_FILE).private_key
    except (HomeError, OSError, ValueError) as exc:
        raise CommandError(f"cannot read {spec.name}'s key: {exc}") from None


def _get(spec: NodeSpec, path: str) -> dict:
    status, answer = call_node(spec.url, path, timeout=5.0)
    if status != 200:
        raise CommandError(f"{spec.name} answered {status} to GET {path}: {answer.get('error')}")
    return answer


def _members(spec: NodeSpec) -> dict[str, int]:
    """Address -> power of the set of the next height, as ``spec``'s node reports it."""
    return {v["address"]: int(v["power"]) for v in _get(spec, "/v1/validators")["validators"]}


def _signed_latest(spec: NodeSpec, address: str) -> int | None:
    """The latest block's height if its certificate holds ``address``'s precommit, else None."""
    block = _get(spec, "/v1/blocks/latest")
    signers = {s.get("validator") for s in (block.get("commit") or {}).get("signatures", [])}
    return int(block["height"]) if address in signers else None


def join(base: Path, name: str, power: int, timeout_s: float) -> dict:
    specs = _specs(argparse.Namespace(home=str(base)))
    node = find_node(specs, name)
    address = address_of(load_key_file(node.home / KEY_FILE).public_key)
    chain = _get(node, "/v1/status")
    if chain.get("catching_up"):
        raise CommandError(f"{node.name} is catching up (height {chain['height']}); it joins once it follows")
    expires = int(chain["height"]) + DEFAULT_EXPIRES_IN
    started = time.monotonic()
    request = sign_join(chain["chain_id"], _key(node), power, node.name, expires)
    submit_record(node.url, request)
    members = _members(node)
    if address in members:
        raise CommandError(f"{node.name} is already a validator")
    approvers = [s for s in specs if s.name != node.name
                 and address_of(load_key_file(s.home / KEY_FILE).public_key) in members]
    for spec in approvers:
        submit_record(spec.url, sign_approval(chain["chain_id"], _key(spec), request))
    joined_at = signed_at = None
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if joined_at is None and address in _members(node):
            joined_at = int(_get(node, "/v1/status")["height"]) + 1
        if joined_at is not None:
            signed_at = _signed_latest(node, address)
            if signed_at is not None:
                break
        time.sleep(POLL_S)
    if signed_at is None:
        raise CommandError(f"{node.name} did not {'sign a block' if joined_at else 'join the set'} within "
                           f"{timeout_s:g} s (request {request.id.hex()}); see GET /v1/validators/pending")
    return {"name": node.name, "address": address, "power": power, "request_id": request.id.hex(),
            "approvers": [s.name for s in approvers], "joined_at": joined_at, "first_signed": signed_at,
            "seconds": round(time.monotonic() - started, 2)}


def quit_set(base: Path, name: str, timeout_s: float) -> dict:
    node = find_node(_specs(argparse.Namespace(home=str(base))), name)
    address = address_of(load_key_file(node.home / KEY_FILE).public_key)
    if address not in _members(node):
        raise CommandError(f"{node.name} is not a validator")
    chain = _get(node, "/v1/status")
    started = time.monotonic()
    quit_ = sign_quit(chain["chain_id"], _key(node), int(chain["height"]) + DEFAULT_EXPIRES_IN,
                      membership_since(node.url, address))
    submit_record(node.url, quit_)
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if address not in _members(node):
            return {"name": node.name, "address": address, "left_at": int(_get(node, "/v1/status")["height"]) + 1,
                    "seconds": round(time.monotonic() - started, 2)}
        time.sleep(POLL_S)
    raise CommandError(f"{node.name} is still in the set after {timeout_s:g} s; see GET /v1/validators/pending")


def cmd_join(args: argparse.Namespace) -> int:
    try:
        out = join(Path(args.home), args.node, args.power, args.timeout)
    except CommandError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['name']} joined with power {out['power']} at height {out['joined_at']} (approved by "
              f"{', '.join(out['approvers'])}); first signed block {out['first_signed']}, {out['seconds']} s")
    return 0


def cmd_quit(args: argparse.Namespace) -> int:
    try:
        out = quit_set(Path(args.home), args.node, args.timeout)
    except CommandError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['name']} left the validator set at height {out['left_at']} ({out['seconds']} s); it keeps "
              f"running as a full node")
    return 0


def add_reconfig_parsers(sub, with_home, positive_float) -> None:
    p = with_home(sub.add_parser("join", help="make a node of the devnet a validator: its JOIN, the validators' "
                                               "approvals; wait until it signs a block"))
    p.add_argument("node", help="node name (full-0) or index")
    p.add_argument("--power", type=int, default=10, help="voting power (default 10; below 1/3 of the total)")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to wait (default 60)")
    p.add_argument("--json", action="store_true", help="name, address, heights and seconds as JSON")
    p.set_defaults(func=cmd_join)
    p = with_home(sub.add_parser("quit", help="take a validator out of the set (it keeps running as a full node)"))
    p.add_argument("node", help="node name (validator-0) or index")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to wait (default 60)")
    p.add_argument("--json", action="store_true", help="name, address, height and seconds as JSON")
    p.set_defaults(func=cmd_quit)
