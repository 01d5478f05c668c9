"""The ``reconfig`` fault kind at run time: changes of the validator set while the bank workload runs.

Each step makes the change its plan names (``devnet.drill.membership``)
through the nodes' real paths, like ``ledger-devnet add-node``, ``join`` and
``quit`` (``devnet/reconfig_commands.py``) but asynchronous and tolerant of
a node that is down: records are signed with the drill's node keys and
submitted to ``POST /v1/validators/inputs`` of the node concerned, or of any
running node (they are relayed).

- ``join``: ``add_full_node`` writes the home (linked through the proxy), the
  node starts and catches up with the tip, signs its JOIN, every member
  approves; the step waits until the node is in the set and a block's
  certificate holds its signature;
- ``quit``: the validator signs its quit; the step waits until it is out of
  the set; its process keeps running (a full node, still checked for
  agreement and progress);
- ``rotate``: a join of a new node with the old key's power, then the old
  key's quit;
- ``power``: every member approves a power change; the step waits until the
  set shows it.

Before a change the step checks it keeps at least 4 validators and a quorum
of running nodes.  ``net.members`` follows the set the nodes report; each
step's timings (add to caught up, to in the set, to first signed block) go
to ``nem.reconfig_runs`` and the report.
"""

from __future__ import annotations

import time

import httpx

from devnet.cluster import fetch_status
from node.crypto import address_hash, derive_public_key, encode_address
from node.types.reconfig import PoolItem, power_request, sign_approval, sign_join, sign_quit
from node.validator_cli import DEFAULT_EXPIRES_IN

CHANGE_TIMEOUT_S = 60.0
"""Bound on one change (catching up, joining, leaving)."""
POLL_S = 0.25
MIN_SET = 4


class ReconfigFailed(Exception):
    """A change that did not happen (refused, or not within ``CHANGE_TIMEOUT_S``)."""


def _address(net, name: str) -> str:
    return encode_address(address_hash(derive_public_key(net.keys[name])))


def _running(net) -> list[str]:
    return [n for n in net.names if net.running(n) and n not in net.paused]


async def _get(nem, name: str, path: str, params: dict | None = None) -> dict | None:
    http = nem.workload.http
    try:
        r = await http.get(nem.net.url(name) + path, params=params, timeout=3.0)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, OSError, ValueError):
        return None


async def _submit(nem, item: PoolItem, first: str) -> str:
    """POST the record to ``first``'s node, else to any running node; the node that took it."""
    http, net = nem.workload.http, nem.net
    refused = []
    for name in [first] + [n for n in _running(net) if n != first]:
        try:
            r = await http.post(net.url(name) + "/v1/validators/inputs", json={"input": item.encoded.hex()},
                                timeout=5.0)
        except (httpx.HTTPError, OSError) as exc:
            refused.append(f"{name}: {type(exc).__name__}")
            continue
        if r.status_code == 202:
            return name
        error = (r.json().get("error") or {}) if r.headers.get("content-type", "").startswith("application/json") \
            else {}
        raise ReconfigFailed(f"{name} refused it: {r.status_code} {error.get('code')}: {error.get('message')}")
    raise ReconfigFailed(f"no node took it: {'; '.join(refused)}")


async def current_set(nem, ask: list[str] | None = None) -> tuple[dict[str, int], int] | None:
    """The set of the next height (address -> power) and the height it is asked at, from a running node."""
    for name in ask or _running(nem.net):
        answer = await _get(nem, name, "/v1/validators")
        if answer is not None:
            return {v["address"]: int(v["power"]) for v in answer["validators"]}, int(answer["height"])
    return None


async def _wait_set(nem, wanted, what: str, deadline: float) -> tuple[dict[str, int], int]:
    """Poll the set until ``wanted(set)``; returns it and the first height whose set has it."""
    while time.monotonic() < deadline:
        found = await current_set(nem)
        if found is not None and wanted(found[0]):
            return found[0], await _first_height(nem, wanted, found[1])
        nem.net.check_crashes()
        await nem.sleep(POLL_S)
    raise ReconfigFailed(f"{what} not seen in the set within {CHANGE_TIMEOUT_S:g}s")


async def _first_height(nem, wanted, height: int) -> int:
    """Step back from ``height`` (whose set has it) to the first such height (``GET /v1/validators?height``)."""
    for _ in range(50):
        if height <= 1:
            break
        answer = None
        for name in _running(nem.net):
            answer = await _get(nem, name, "/v1/validators", {"height": height - 1})
            if answer is not None:
                break
        if answer is None or not wanted({v["address"]: int(v["power"]) for v in answer["validators"]}):
            break
        height -= 1
    return height


async def _membership_since(nem, address: str) -> int:
    """The height ``address``'s membership began, as a running node's ``GET /v1/validators`` says (a quit names
    it; 1 for a genesis member)."""
    for name in _running(nem.net):
        answer = await _get(nem, name, "/v1/validators")
        for v in (answer or {}).get("validators", []):
            if v["address"] == address:
                return int(v.get("since", 1))
    raise ReconfigFailed(f"{address} is not in the set a running node reports: nothing to quit")


def sync_members(nem, powers: dict[str, int]) -> None:
    """``net.members`` from the set a node reports (names of the drill's nodes)."""
    by_address = {encode_address(a): n for n, a in nem.net.validator_addresses.items()}
    nem.net.members = {by_address.get(a, a): p for a, p in powers.items()}


async def _chain(nem) -> tuple[str, int]:
    for name in _running(nem.net):
        status = await _get(nem, name, "/v1/status")
        if status is not None:
            return status["chain_id"], int(status["height"])
    raise ReconfigFailed("no node answers GET /v1/status")


async def _approve_all(nem, chain_id: str, request) -> list[str]:
    members = list(nem.net.members)
    for member in members:
        await _submit(nem, sign_approval(chain_id, nem.net.keys[member], request), member)
    return members


# --------------------------------------------------------------------------- the changes


async def add_node(nem, name: str, record: dict) -> None:
    """Home, process, caught up with the tip seen when it started."""
    net, started = nem.net, time.monotonic()
    await net.add_node(name)
    tip = nem.monitor.tip
    pid = net.start(name)
    record.update(pid=pid, tip_at_start=tip)
    deadline = started + CHANGE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = await fetch_status(nem.workload.http, net.specs[name], 1.0)
        if status is not None and int(status["height"]) >= tip and not status.get("catching_up"):
            record.update(caught_up_s=round(time.monotonic() - started, 2), caught_up_height=int(status["height"]))
            nem.event("add-node", f"{name} (pid {pid}) caught up with height {tip} after {record['caught_up_s']}s")
            return
        net.check_crashes()
        await nem.sleep(POLL_S)
    raise ReconfigFailed(f"{name} did not catch up with height {tip} within {CHANGE_TIMEOUT_S:g}s")


async def join(nem, name: str, power: int, record: dict, started: float) -> None:
    """``name``'s JOIN, approved by every member; until it is in the set and signed a block."""
    net = nem.net
    address = _address(net, name)
    chain_id, height = await _chain(nem)
    asked = time.monotonic()
    request = sign_join(chain_id, net.keys[name], power, name, height + DEFAULT_EXPIRES_IN)
    await _submit(nem, request, name)
    record["approvers"] = await _approve_all(nem, chain_id, request)
    deadline = asked + CHANGE_TIMEOUT_S
    powers, joined_at = await _wait_set(nem, lambda s: address in s, f"{name}'s join", deadline)
    record.update(joined_at=joined_at, in_set_s=round(time.monotonic() - asked, 2))
    sync_members(nem, powers)
    while time.monotonic() < deadline:
        ask = next((n for n in _running(net) if n != name), name)
        block = await _get(nem, ask, "/v1/blocks/latest")
        signers = {s.get("validator") for s in ((block or {}).get("commit") or {}).get("signatures", [])}
        if block is not None and address in signers:
            record.update(first_signed=int(block["height"]), first_signed_s=round(time.monotonic() - started, 2))
            nem.event("join", f"{name} power {power}: in the set from height {joined_at} ({record['in_set_s']}s "
                              f"after its JOIN), first signed block {block['height']} {record['first_signed_s']}s "
                              f"after the step began")
            return
        await nem.sleep(POLL_S)
    raise ReconfigFailed(f"{name} is in the set but signed no block within {CHANGE_TIMEOUT_S:g}s")


async def quit_set(nem, name: str, record: dict) -> None:
    net = nem.net
    address = _address(net, name)
    rest = {n: p for n, p in net.members.items() if n != name}
    up = sum(p for n, p in rest.items() if n in _running(net))
    if len(rest) < MIN_SET or 3 * up <= 2 * sum(rest.values()):
        raise ReconfigFailed(f"{name} may not quit: {len(rest)} validators would remain, {up} of "
                             f"{sum(rest.values())} power running")
    chain_id, height = await _chain(nem)
    since = await _membership_since(nem, address)
    asked = time.monotonic()
    await _submit(nem, sign_quit(chain_id, net.keys[name], height + DEFAULT_EXPIRES_IN, since), name)
    record["since"] = since
    powers, left_at = await _wait_set(nem, lambda s: address not in s, f"{name}'s quit",
                                      asked + CHANGE_TIMEOUT_S)
    sync_members(nem, powers)
    record.update(left_at=left_at, quit_s=round(time.monotonic() - asked, 2))
    status = None
    for _ in range(40):  # its own status says so once it has passed the height the change applies at
        status = await _get(nem, name, "/v1/status")
        if status is not None and status.get("is_validator") is False:
            break
        await nem.sleep(POLL_S)
    record.update(still_running=net.running(name), is_validator=None if status is None else status.get("is_validator"))
    nem.event("quit", f"{name} out of the set from height {left_at} after {record['quit_s']}s; still running: "
                      f"{record['still_running']}")


async def change_power(nem, name: str, power: int, record: dict) -> None:
    net = nem.net
    address = _address(net, name)
    chain_id, height = await _chain(nem)
    asked = time.monotonic()
    request = power_request(derive_public_key(net.keys[name]), power, height + DEFAULT_EXPIRES_IN)
    record["approvers"] = await _approve_all(nem, chain_id, request)
    powers, at = await _wait_set(nem, lambda s: s.get(address) == power, f"{name}'s power {power}",
                                 asked + CHANGE_TIMEOUT_S)
    sync_members(nem, powers)
    record.update(applied_at=at, power_s=round(time.monotonic() - asked, 2))
    nem.event("power", f"{name} has power {power} from height {at} after {record['power_s']}s")


async def run_reconfig(nem, step) -> bool:
    """One planned change of the set; its record (timings, heights, error) goes to ``nem.reconfig_runs``."""
    d, net = step.detail, nem.net
    if d["op"] == "none":
        nem.event("skip", "reconfig: no change fits the set")
        return False
    started = time.monotonic()
    record: dict = {"op": d["op"], "node": d["node"], "at_s": round(nem.workload.now(), 2), "ok": False,
                    "set_before": dict(net.members)}
    nem.reconfig_runs.append(record)
    nem.event("reconfig-begin", step.describe())
    try:
        if d["op"] in ("join", "rotate"):
            record["power"] = d["power"]
            await add_node(nem, d["node"], record)
            await join(nem, d["node"], d["power"], record, started)
        if d["op"] == "rotate":
            record["old"] = d["old"]
            await quit_set(nem, d["old"], record)
        elif d["op"] == "quit":
            await quit_set(nem, d["node"], record)
        elif d["op"] == "power":
            record.update(old_power=net.members.get(d["node"]), power=d["power"])
            await change_power(nem, d["node"], d["power"], record)
        record["ok"] = True
    except ReconfigFailed as exc:
        record["error"] = str(exc)
    record.update(seconds=round(time.monotonic() - started, 2), set_after=dict(net.members))
    nem.event("reconfig", f"{'done' if record['ok'] else 'FAILED'}: {d['op']} {d['node']} in "
                          f"{record['seconds']}s{'' if record['ok'] else ': ' + record['error']}; set now "
                          f"{format_set(net.members)}")
    await nem.sleep(max(0.0, step.duration_s - (time.monotonic() - started)))
    return True


def format_set(members: dict[str, int]) -> str:
    return ", ".join(f"{n}:{p}" for n, p in members.items())
