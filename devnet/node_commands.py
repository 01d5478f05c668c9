"""``ledger-devnet`` commands on the nodes of a devnet: down, status (with the voting power up), logs, url,
kill / stop / start / pause / resume, add-node."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from devnet.cli_common import _specs, console, fail
from devnet.cluster import (
    LOG_FILE,
    STDOUT_FILE,
    DevnetError,
    NodeSpec,
    find_node,
    netns,
    pid_alive,
    process_paused,
    read_pid,
    signal_node,
    start_nodes,
    statuses,
    stop_node,
    stop_nodes,
    wait_for_height,
    wait_stopped,
)

# --------------------------------------------------------------------------- down / status / logs


def cmd_down(args: argparse.Namespace) -> int:
    for spec, pid in stop_nodes(_specs(args)):
        print(f"stopped {spec.name} (pid {pid})")
    removed = netns.teardown(Path(args.home))
    if removed:
        print(f"removed the network namespaces, veths and bridge it made: {', '.join(removed)}")
    print(f"devnet in {args.home} is down (data kept: `ledger-devnet up` resumes it, `up --fresh` starts over)")
    return 0


def node_report(spec: NodeSpec, status: dict | None) -> dict:
    pid = read_pid(spec.home)
    running = pid_alive(pid)
    peers = (status or {}).get("peers") or []
    return {
        "name": spec.name,
        "url": spec.url,
        "pid": pid if running else None,
        "running": running,
        "paused": running and process_paused(pid),
        "responding": status is not None,
        "height": status.get("height") if status else None,
        "app_hash": status.get("app_hash") if status else None,
        "latest_block_hash": status.get("latest_block_hash") if status else None,
        "catching_up": status.get("catching_up") if status else None,
        "peers_up": sum(1 for p in peers if p.get("up")) if status else None,
        "peers": peers,
    }


def voting_power(home: Path, specs: list[NodeSpec] | None = None, reports: list[dict] | None = None) \
        -> dict[str, int]:
    """Each validator's voting power by node name: the set of the next height as a responding node reports it
    (it changes with joins and quits), else the devnet's genesis."""
    for report in reports or []:
        if not report["responding"] or specs is None:
            continue
        from node.validator_cli import CommandError, call_node
        try:
            status, answer = call_node(report["url"], "/v1/validators", timeout=2.0)
        except CommandError:
            continue
        if status != 200:
            continue
        power = {v["address"]: int(v["power"]) for v in answer.get("validators", [])}
        by_name = {spec.name: power.get(address_of_home(spec.home), 0) for spec in specs}
        named = {name: p for name, p in by_name.items() if p}
        missing = sum(power.values()) - sum(named.values())
        return {**named, **({"(outside this devnet)": missing} if missing else {})}
    with open(Path(home) / "genesis.json", encoding="utf-8") as handle:
        genesis = json.load(handle)
    return {v["name"]: int(v["power"]) for v in genesis.get("validators", [])}


def address_of_home(home: Path) -> str | None:
    from node.config import KEY_FILE
    from node.crypto import address_of
    from node.home import HomeError, load_key_file

    try:
        return address_of(load_key_file(Path(home) / KEY_FILE).public_key)
    except (HomeError, OSError, ValueError):
        return None


def quorum_of(reports: list[dict], power: dict[str, int]) -> dict:
    """The voting power of the validators that answer (and are not paused), and whether it is a quorum
    (more than 2/3 of the total: what the chain needs to commit)."""
    total = sum(power.values())
    up = sum(power.get(r["name"], 0) for r in reports if r["responding"] and not r["paused"])
    return {"power_up": up, "power_total": total, "quorum": 3 * up > 2 * total}


def cmd_status(args: argparse.Namespace) -> int:
    """Every node, the voting power up, and whether it is a quorum; exit 1 without one."""
    specs = _specs(args)
    reports = [node_report(s, st) for s, st in zip(specs, statuses(specs, args.timeout), strict=True)]
    quorum = quorum_of(reports, voting_power(Path(args.home), specs, reports))
    code = 0 if quorum["quorum"] else 1
    if args.json:
        print(json.dumps({"nodes": reports, **quorum}, indent=2))
        return code
    from rich.table import Table

    table = Table(title=f"devnet {args.home}", title_justify="left")
    for col in ("node", "url", "pid", "state", "height", "app hash", "peers up", "catching up"):
        table.add_column(col, no_wrap=True)
    for r in reports:
        state = "paused" if r["paused"] else ("running" if r["responding"] else
                                              ("not responding" if r["running"] else "stopped"))
        table.add_row(r["name"], r["url"], str(r["pid"] or "-"), state,
                      "-" if r["height"] is None else str(r["height"]),
                      (r["app_hash"] or "-")[:16], "-" if r["peers_up"] is None else
                      f"{r['peers_up']}/{len(r['peers'])}",
                      "-" if r["catching_up"] is None else ("yes" if r["catching_up"] else "no"))
    console().print(table)
    verdict = "quorum: yes" if quorum["quorum"] else \
        "quorum: NO: the chain cannot commit until validators with more than 2/3 of the power are up " \
        "(`ledger-devnet start --all`)"
    print(f"voting power up: {quorum['power_up']} of {quorum['power_total']}; {verdict}")
    return code


def cmd_logs(args: argparse.Namespace) -> int:
    spec = find_node(_specs(args), args.node)
    path = spec.home / LOG_FILE
    if not path.exists():
        path = spec.home / STDOUT_FILE
    if not path.exists():
        return fail(f"{spec.name} has no log yet ({spec.home / LOG_FILE})")
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()
        for line in lines[-args.lines:] if args.lines > 0 else lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        if not args.follow:
            return 0
        try:
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return 0


def cmd_url(args: argparse.Namespace) -> int:
    print(find_node(_specs(args), args.node).url)
    return 0


# --------------------------------------------------------------------------- perturbations


def _signal(args: argparse.Namespace, sig: int, verb: str) -> int:
    """Send ``sig`` to a node; a node already in the state asked for is left as it is (exit 0)."""
    spec = find_node(_specs(args), args.node)
    pid = read_pid(spec.home)
    if not pid_alive(pid):
        print(f"{spec.name} is not running; nothing to do")
        return 0
    paused = process_paused(pid)
    if (sig == signal.SIGSTOP and paused) or (sig == signal.SIGCONT and not paused):
        print(f"{spec.name} is already {'paused' if paused else 'running'} (pid {pid}); nothing to do")
        return 0
    if not signal_node(spec, sig):
        print(f"{spec.name} is not running; nothing to do")
        return 0
    if sig == signal.SIGKILL:
        wait_stopped(spec, 5.0)
    print(f"{verb} {spec.name} (pid {pid})")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    return _signal(args, signal.SIGKILL, "killed (SIGKILL)")


def cmd_pause(args: argparse.Namespace) -> int:
    return _signal(args, signal.SIGSTOP, "paused (SIGSTOP)")


def cmd_resume(args: argparse.Namespace) -> int:
    return _signal(args, signal.SIGCONT, "resumed (SIGCONT)")


def cmd_stop(args: argparse.Namespace) -> int:
    spec = find_node(_specs(args), args.node)
    pid = read_pid(spec.home)
    if not pid_alive(pid):
        print(f"{spec.name} is not running; nothing to do")
        return 0
    stop_node(spec)
    print(f"stopped (SIGTERM) {spec.name} (pid {pid})")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Start a stopped node (or, with ``--all``, every stopped one) and wait until it answers."""
    specs = _specs(args)
    if args.all == (args.node is not None):
        return fail("name one node, or --all", 2)
    chosen = specs if args.all else [find_node(specs, args.node)]
    for spec in chosen:
        if pid_alive(read_pid(spec.home)):
            print(f"{spec.name} is already running (pid {read_pid(spec.home)})")
    missing = [s for s in chosen if not pid_alive(read_pid(s.home))]
    return start_and_report(missing, args.timeout)


def start_and_report(specs: list[NodeSpec], timeout: float) -> int:
    """Start ``specs`` and wait until each answers; one line per node."""
    if not specs:
        return 0
    start_nodes(specs)
    waited = wait_for_height(specs, 0, timeout, status_timeout_s=0.5)
    code = 0
    for spec in specs:
        pid = read_pid(spec.home)
        if spec.name in waited.heights:
            print(f"started {spec.name} (pid {pid}) at {spec.url}, height {waited.heights[spec.name]}")
        elif not pid_alive(pid):
            code = fail(f"{spec.name} exited at start; see `ledger-devnet logs {spec.name}`")
        else:
            code = fail(f"{spec.name} started (pid {pid}) but does not answer yet")
    return code


def cmd_add_node(args: argparse.Namespace) -> int:
    """A full node for the running devnet: its home, started, caught up with the validators; prints its name."""
    from devnet.cluster.full_nodes import add_full_node

    home = Path(args.home)
    try:
        spec = add_full_node(home, args.name, state_sync=args.state_sync)
    except DevnetError as exc:
        return fail(str(exc), 2)
    validators = [s for s in _specs(args) if s.role == "validator"]
    tip = max((st or {}).get("height", 0) for st in statuses(validators, 1.0))
    start_nodes([spec])
    waited = wait_for_height([spec], tip, args.timeout, status_timeout_s=0.5)
    if not waited:
        return fail(f"{spec.name} did not catch up with height {tip} within {args.timeout:g} s: {waited.problem}; "
                    f"see `ledger-devnet logs {spec.name}`")
    if args.json:
        print(json.dumps({"name": spec.name, "url": spec.url, "height": waited.heights[spec.name]}))
    else:
        print(spec.name)
    return 0
