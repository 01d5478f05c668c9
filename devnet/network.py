"""A local network of node processes: homes, ports, start, stop, wait.

Used by ``ledger-devnet`` and by the multi-process tests.  Every node is a
real ``ledger-node start`` process bound to loopback; each writes its log to
``HOME/node.log`` and its pid to ``HOME/node.pid``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from genesis.document import ConsensusParams, Genesis, dump_genesis
from node.config import NodeConfig
from node.home import init_home

NETWORK_FILE = "network.json"
PID_FILE = "node.pid"
LOG_FILE = "node.log"


class DevnetError(RuntimeError):
    code = "devnet-error"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel says are free now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class NodeSpec:
    """One node of a local network."""

    name: str
    """Validator name from genesis (also the home folder's name)."""
    home: Path
    """The node's home directory."""
    host: str
    """Loopback address it binds to."""
    port: int
    """REST and peer port."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def ports_free(ports: list[int], host: str = "127.0.0.1") -> bool:
    """True when every port in ``ports`` can be bound on ``host`` right now."""
    sockets = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()


def pick_ports(count: int, base_port: int | None, host: str = "127.0.0.1") -> list[int]:
    """``base_port .. base_port+count-1`` when all are free (stable URLs), else any free ports."""
    if base_port:
        wanted = list(range(base_port, base_port + count))
        if wanted[-1] < 65536 and ports_free(wanted, host):
            return wanted
    return free_ports(count, host)


def is_loopback(host: str) -> bool:
    """Only loopback nodes are started by this module (``init`` writes others, never starts them)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _write_homes(base: Path, genesis: Genesis, validator_keys: dict[str, bytes], specs: list[NodeSpec],
                 bind_hosts: dict[str, str], config_overrides: dict[str, object] | None,
                 multi_host: bool) -> list[NodeSpec]:
    base.mkdir(parents=True, exist_ok=True)
    genesis_path = base / "genesis.json"
    dump_genesis(genesis, genesis_path)
    for spec in specs:
        peers = tuple(other.url for other in specs if other.name != spec.name)
        # a home meant for another machine must not name a path of this one: it logs to stderr there
        log_file = "" if multi_host else str(spec.home / LOG_FILE)
        config = NodeConfig(name=spec.name, host=bind_hosts[spec.name], port=spec.port, peers=peers,
                            log_file=log_file).with_overrides(config_overrides or {})
        init_home(spec.home, genesis_path, validator_keys[spec.name], config, force=True)
    (base / NETWORK_FILE).write_text(json.dumps(
        {"chain_id": genesis.chain_id, "multi_host": multi_host,
         "nodes": [{"name": s.name, "home": str(s.home), "host": s.host, "port": s.port} for s in specs]},
        indent=2))
    return specs


def write_network(base: Path, genesis: Genesis, validator_keys: dict[str, bytes], host: str = "127.0.0.1",
                  config_overrides: dict[str, object] | None = None, *,
                  base_port: int | None = None) -> list[NodeSpec]:
    """Create one home per validator under ``base`` with peers wired as a full mesh.

    Ports are any free ones, or ``base_port`` and up when those are all free.
    Homes are recorded with absolute paths: nodes run with another working directory.
    """
    base = Path(base).resolve()
    names = list(validator_keys)
    ports = pick_ports(len(names), base_port, host)
    specs = [NodeSpec(name, base / name, host, port) for name, port in zip(names, ports)]
    return _write_homes(base, genesis, validator_keys, specs, {n: host for n in names}, config_overrides, False)


def write_multi_host_network(base: Path, genesis: Genesis, validator_keys: dict[str, bytes], hosts: list[str],
                             base_port: int = 26657,
                             config_overrides: dict[str, object] | None = None) -> list[NodeSpec]:
    """One home per validator for a network spread over ``hosts`` (validator i on host i mod len(hosts)).

    Each node binds to its own host and knows the others as ``http://host:port``;
    validators that share a host get consecutive ports.  Nothing is started:
    copy each home to its machine and run ``ledger-node start --home HOME`` there.
    """
    if not hosts:
        raise DevnetError("at least one host is needed")
    base = Path(base).resolve()
    names = list(validator_keys)
    specs = []
    for i, name in enumerate(names):
        host = hosts[i % len(hosts)]
        specs.append(NodeSpec(name, base / name, host, base_port + i // len(hosts)))
    return _write_homes(base, genesis, validator_keys, specs, {s.name: s.host for s in specs}, config_overrides,
                        True)


def network_info(base: Path) -> dict:
    path = base / NETWORK_FILE
    if not path.exists():
        raise DevnetError(f"no devnet in {base}: run `ledger-devnet up` first")
    return json.loads(path.read_text())


def load_network(base: Path) -> list[NodeSpec]:
    obj = network_info(base)
    # homes written relative to the working directory of the writer resolve against ``base``'s parent
    return [NodeSpec(n["name"], Path(n["home"]) if Path(n["home"]).is_absolute() else
                     Path(base).resolve() / Path(n["home"]).name, n["host"], n["port"]) for n in obj["nodes"]]


def find_node(specs: list[NodeSpec], name: str) -> NodeSpec:
    """A node by name (``validator-1``) or by index (``1``)."""
    for spec in specs:
        if spec.name == name:
            return spec
    if name.isdigit() and int(name) < len(specs):
        return specs[int(name)]
    raise DevnetError(f"no node {name!r}; nodes: {', '.join(s.name for s in specs)}")


def node_command(home: Path) -> list[str]:
    return [sys.executable, "-m", "node.cli", "start", "--home", str(home)]


def read_pid(home: Path) -> int | None:
    """The pid in ``HOME/node.pid``; None when there is none, or when that pid now belongs to a process that
    is not this home's node (a stale file after a reboot must never get an unrelated process signalled)."""
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # gone (or no /proc): pid_alive decides
    if not raw:
        return pid  # exiting or a zombie: its memory, and so its command line, is gone; pid_alive decides
    argv = raw.split(b"\0")
    if b"node.cli" not in argv or not any(a.endswith(Path(home).name.encode()) for a in argv):
        return None
    return pid


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:  # nor a zombie that nobody reaps (e.g. under a container init that does not)
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def process_paused(pid: int | None) -> bool:
    """True when ``pid`` is stopped by SIGSTOP (Linux /proc; False where unknown)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("T", "t")


def start_node(spec: NodeSpec, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``ledger-node start`` for ``spec`` in the background (its own session)."""
    if not is_loopback(spec.host):
        raise DevnetError(f"{spec.name} binds to {spec.host}, not loopback: start it on its own machine with "
                          f"`ledger-node start --home {spec.home}`")
    if pid_alive(read_pid(spec.home)):
        raise DevnetError(f"{spec.name} is already running (pid {read_pid(spec.home)})")
    env = dict(os.environ)
    env.update(extra_env or {})
    with open(spec.home / "stdout.log", "ab") as out:
        proc = subprocess.Popen(node_command(spec.home), stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(Path(__file__).resolve().parents[1]), start_new_session=True)
    (spec.home / PID_FILE).write_text(str(proc.pid))
    return proc


def signal_node(spec: NodeSpec, sig: int) -> bool:
    pid = read_pid(spec.home)
    if not pid_alive(pid):
        return False
    os.kill(pid, sig)
    return True


def wait_stopped(spec: NodeSpec, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(read_pid(spec.home)):
            return True
        time.sleep(0.05)
    return False


def stop_node(spec: NodeSpec, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not stopped in time; also resumes a paused node first."""
    pid = read_pid(spec.home)
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGTERM)
    if not wait_stopped(spec, timeout_s):
        os.kill(pid, signal.SIGKILL)
        wait_stopped(spec, 5)


def stop_nodes(specs: list[NodeSpec], timeout_s: float = 10.0) -> list[tuple[NodeSpec, int]]:
    """``stop_node`` for many nodes at once: SIGTERM to all, one shared wait, SIGKILL to stragglers.

    Returns the (node, pid) pairs that were running.
    """
    running = []
    for spec in specs:
        pid = read_pid(spec.home)
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
            running.append((spec, pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(pid) for _, pid in running):
        time.sleep(0.05)
    for spec, pid in running:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_stopped(spec, 5)
    return running


def node_status(spec: NodeSpec, timeout_s: float = 1.0) -> dict | None:
    try:
        response = httpx.get(spec.url + "/v1/status", timeout=timeout_s)
        if response.status_code == 200:
            return response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return None


def wait_for_height(specs: list[NodeSpec], height: int, timeout_s: float) -> bool:
    """Poll until every node in ``specs`` reports at least ``height`` (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = [node_status(s) for s in specs]
        if all(st is not None and st["height"] >= height for st in statuses):
            return True
        time.sleep(0.1)
    return False


def devnet_params() -> ConsensusParams:
    """Timeouts for a loopback network: short, so a lost round costs little."""
    return ConsensusParams(timeout_propose_ms=1500, timeout_prevote_ms=500, timeout_precommit_ms=500,
                           timeout_delta_ms=250, timeout_commit_ms=100)
