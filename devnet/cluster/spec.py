"""What a local network is made of: its nodes (name, home, host, port), ports, and ``network.json``.

``network.json`` in the network's folder lists every node; it is written by
``devnet.cluster.homes`` (the only writer) and read here, by ``ledger-devnet``
and by the wallet (which finds a devnet's nodes through it).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from genesis.document import ConsensusParams

NETWORK_FILE = "network.json"
PID_FILE = "node.pid"
LOG_FILE = "node.log"
STDOUT_FILE = "stdout.log"
"""A node process's stdout and stderr (start-up errors land here, before ``node.log`` exists)."""


class DevnetError(RuntimeError):
    code = "devnet-error"


@dataclass(frozen=True)
class NodeSpec:
    """One node of a local network."""

    name: str
    """Validator name from genesis (also the home folder's name)."""
    home: Path
    """The node's home directory."""
    host: str
    """Address it binds to: loopback, or its namespace's address in a netns devnet (``devnet.cluster.netns``)."""
    port: int
    """Client REST port."""
    p2p_port: int = 0
    """Peer transport port (0: none recorded, an old ``network.json``)."""
    role: str = "validator"
    """``validator`` (its key is in genesis) or ``full`` (follows the chain, never signs)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def devnet_params() -> ConsensusParams:
    """Timeouts for a loopback network: short, so a lost round costs little."""
    return ConsensusParams(timeout_propose_ms=1500, timeout_prevote_ms=500, timeout_precommit_ms=500,
                           timeout_delta_ms=250, timeout_commit_ms=100)


# --------------------------------------------------------------------------- ports


def _ephemeral_low() -> int:
    """First port of the kernel's range for outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


PORT_SCAN_START = 10_000
"""Listening ports are taken from here up to the outgoing-connection range."""
_cursor: int | None = None
"""Where the next scan starts, so successive calls in one process hand out different ports."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different ports free now, below the kernel's range for outgoing connections.

    A port from that range (what binding port 0 gives) can be taken meanwhile as the local end of some
    outgoing connection, and a node restarted on it later fails with "address already in use".  The
    scan starts at an offset derived from the process id, so concurrent test runs rarely meet, and goes
    on where the previous call stopped."""
    global _cursor
    low = _ephemeral_low()
    span = max(low - PORT_SCAN_START, 1)
    start = (os.getpid() * 7919 if _cursor is None else _cursor) % span
    sockets: list[socket.socket] = []
    try:
        for step in range(span):
            if len(sockets) == count:
                break
            port = PORT_SCAN_START + (start + step) % span
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
            _cursor = start + step + 1
        while len(sockets) < count:  # nothing free below the range: let the kernel choose
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def ports_free(ports: list[int], host: str = "127.0.0.1") -> bool:
    """True when every port in ``ports`` can be bound on ``host`` right now, as a node binds it (with
    SO_REUSEADDR: connections of a stopped node waiting in TIME_WAIT do not make its port taken)."""
    return taken_port(ports, host) is None


def taken_port(ports: list[int], host: str = "127.0.0.1") -> tuple[int, str] | None:
    """The first port of ``ports`` that cannot be bound on ``host``, and why; None when all can."""
    sockets = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                return port, exc.strerror or str(exc)
        return None
    finally:
        for s in sockets:
            s.close()


def pick_ports(count: int, base_port: int | None, host: str = "127.0.0.1") -> list[int]:
    """``base_port .. base_port+count-1`` when all are free (stable URLs), else any free ports."""
    if base_port:
        wanted = list(range(base_port, base_port + count))
        if wanted[-1] < 65536:
            taken = taken_port(wanted, host)
            if taken is None:
                return wanted
            print(f"note: port {taken[0]} on {host} is taken ({taken[1]}); using other free ports instead of "
                  f"{wanted[0]}-{wanted[-1]}", file=sys.stderr)
    return free_ports(count, host)


def is_loopback(host: str) -> bool:
    """Only loopback nodes are started by this library (``init`` writes others, never starts them), and the
    nodes of a netns devnet it made itself, at the addresses ``netns.json`` records (``processes.start_node``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# --------------------------------------------------------------------------- specs


P2P_PORT_OFFSET = 1000
"""A devnet node's p2p port is its REST port plus this (26657 -> 27657), when free."""


def local_specs(base: Path, names: list[str], host: str = "127.0.0.1", base_port: int | None = None) -> list[NodeSpec]:
    """One loopback node per name, home ``base/NAME`` (absolute: nodes run with another working directory);
    REST ports are ``base_port`` and up when those are all free, else any free ones; p2p ports are
    ``base_port + P2P_PORT_OFFSET`` and up likewise."""
    base = Path(base).resolve()
    ports = pick_ports(len(names), base_port, host)
    p2p_ports = pick_ports(len(names), base_port + P2P_PORT_OFFSET if base_port else None, host)
    if set(p2p_ports) & set(ports):
        p2p_ports = [p for p in free_ports(2 * len(names), host) if p not in ports][:len(names)]
    return [NodeSpec(name, base / name, host, port, p2p)
            for name, port, p2p in zip(names, ports, p2p_ports, strict=True)]


def multi_host_specs(base: Path, names: list[str], hosts: list[str], base_port: int = 26657) -> list[NodeSpec]:
    """Validator i on host i mod len(hosts); validators that share a host get consecutive ports."""
    if not hosts:
        raise DevnetError("at least one host is needed")
    base = Path(base).resolve()
    return [NodeSpec(name, base / name, hosts[i % len(hosts)], base_port + i // len(hosts),
                     base_port + P2P_PORT_OFFSET + i // len(hosts))
            for i, name in enumerate(names)]


def write_network_file(base: Path, chain_id: str, specs: list[NodeSpec], multi_host: bool = False) -> None:
    (Path(base) / NETWORK_FILE).write_text(json.dumps(
        {"chain_id": chain_id, "multi_host": multi_host,
         "nodes": [{"name": s.name, "home": str(s.home), "host": s.host, "port": s.port, "p2p_port": s.p2p_port,
                    "role": s.role} for s in specs]},
        indent=2))


def add_to_network_file(base: Path, spec: NodeSpec) -> None:
    """Append ``spec`` to ``network.json`` (a node added to a running network)."""
    info = network_info(base)
    if any(n["name"] == spec.name for n in info["nodes"]):
        raise DevnetError(f"{base} already has a node named {spec.name}")
    info["nodes"].append({"name": spec.name, "home": str(spec.home), "host": spec.host, "port": spec.port,
                          "p2p_port": spec.p2p_port, "role": spec.role})
    path = Path(base) / NETWORK_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)


def network_info(base: Path) -> dict:
    path = Path(base) / NETWORK_FILE
    if not path.exists():
        raise DevnetError(f"no devnet in {base}: run `ledger-devnet up` first")
    return json.loads(path.read_text())


def load_network(base: Path) -> list[NodeSpec]:
    obj = network_info(base)
    # homes written relative to the working directory of the writer resolve against ``base``
    return [NodeSpec(n["name"], Path(n["home"]) if Path(n["home"]).is_absolute() else
                     Path(base).resolve() / Path(n["home"]).name, n["host"], n["port"], n.get("p2p_port", 0),
                     n.get("role", "validator"))
            for n in obj["nodes"]]


def find_node(specs: list[NodeSpec], name: str) -> NodeSpec:
    """A node by name (``validator-1``) or by index (``1``)."""
    for spec in specs:
        if spec.name == name:
            return spec
    if name.isdigit() and int(name) < len(specs):
        return specs[int(name)]
    raise DevnetError(f"no node {name!r}; nodes: {', '.join(s.name for s in specs)}")
