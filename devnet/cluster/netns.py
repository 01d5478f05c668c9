"""Network namespaces for a local network: each node on its own address, as on a LAN.

``ledger-devnet up --netns`` and ``ledger-devnet bench --netns`` put every node
in its own network namespace, joined to the root namespace by a veth pair on
one bridge.  The devnet gets a private ``/24`` (``10.213.N.0/24``): the bridge
is ``.1`` in the root namespace (so the wallet, the bench and ``curl`` reach
every node directly), node *k* is ``.(k+2)`` inside its namespace, with its
loopback up.  Nodes bind to their own address for REST and p2p and name their
peers by those addresses: the same code path as machines on a LAN (with
``p2p_delay_ms`` / ``p2p_jitter_ms``, a WAN).

What is made is recorded first, in ``netns.json`` in the devnet's folder, then
created; ``teardown`` removes exactly what that file names (and only names
with this module's prefix), ``ensure`` recreates what is missing (``up`` on a
stopped devnet).  A node is started with ``ip netns exec NS <command>``:
``ip`` execs the command, so the pid is the node's own.

Needs root and the ``ip`` command (iproute2); ``check_available`` says so in
one line when they are missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devnet.cluster.spec import P2P_PORT_OFFSET, DevnetError, NodeSpec

NETNS_FILE = "netns.json"
PREFIX = "ldn"
"""Every bridge, veth and namespace this module makes starts with this (and a random tag per devnet)."""
SUBNET_FIRST_OCTETS = "10.213"
"""Devnets take ``10.213.N.0/24`` for a free ``N``."""
FIRST_HOST = 2
"""Node k's address ends in ``FIRST_HOST + k`` (``.1`` is the bridge)."""
IP_TIMEOUT_S = 10.0
BRIDGE_NO_NETFILTER = ("nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0")
NEEDS = "--netns needs root and the `ip` command (iproute2)"


class NetnsUnavailable(DevnetError):
    """Namespaces cannot be made here (not root, no ``ip``, or not permitted)."""

    code = "netns-unavailable"


@dataclass(frozen=True)
class NodeNamespace:
    name: str
    """The node's name (``validator-0``)."""
    netns: str
    host_veth: str
    """The veth end on the bridge, in the root namespace."""
    node_veth: str
    """The veth end inside the node's namespace."""
    address: str


@dataclass(frozen=True)
class Layout:
    """One devnet's bridge, subnet and per-node namespaces (what ``netns.json`` holds)."""

    tag: str
    subnet: str
    """``10.213.N.0/24``."""
    bridge: str
    bridge_address: str
    """``10.213.N.1``: the root namespace's address on the devnet's subnet."""
    nodes: tuple[NodeNamespace, ...]

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def node(self, name: str) -> NodeNamespace | None:
        return next((n for n in self.nodes if n.name == name), None)

    def to_json(self) -> dict:
        return {"tag": self.tag, "subnet": self.subnet, "bridge": self.bridge, "bridge_address": self.bridge_address,
                "nodes": [{"name": n.name, "netns": n.netns, "host_veth": n.host_veth, "node_veth": n.node_veth,
                           "address": n.address} for n in self.nodes]}

    @classmethod
    def from_json(cls, obj: dict) -> Layout:
        nodes = tuple(NodeNamespace(n["name"], n["netns"], n["host_veth"], n["node_veth"], n["address"])
                      for n in obj["nodes"])
        layout = cls(obj["tag"], obj["subnet"], obj["bridge"], obj["bridge_address"], nodes)
        ours = [layout.bridge] + [x for n in nodes for x in (n.netns, n.host_veth, n.node_veth)]
        if not all(name.startswith(PREFIX) for name in ours):
            raise DevnetError(f"{NETNS_FILE} names interfaces or namespaces not made by ledger-devnet; refusing it")
        return layout


# --------------------------------------------------------------------------- can we?


def ip_command() -> str | None:
    """Path of the ``ip`` command, or None."""
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)


def check_available() -> str:
    """The ``ip`` command's path; raises ``NetnsUnavailable`` (one line) when not root or there is no ``ip``."""
    ip = ip_command()
    if ip is None:
        raise NetnsUnavailable(f"{NEEDS}: `ip` was not found on PATH")
    if os.geteuid() != 0:
        raise NetnsUnavailable(f"{NEEDS}: run it as root (e.g. with sudo)")
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    ip = check_available()
    try:
        result = subprocess.run([ip, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DevnetError(f"`ip {' '.join(args)}` did not finish in {IP_TIMEOUT_S:.0f} s") from None
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        text = message[-1] if message else f"exit status {result.returncode}"
        if "permission" in text.lower() or "not permitted" in text.lower():
            raise NetnsUnavailable(f"{NEEDS} with the right to make namespaces: `ip {' '.join(args)}`: {text}")
        raise DevnetError(f"`ip {' '.join(args)}` failed: {text}")
    return result


# --------------------------------------------------------------------------- plan and record


def _used_subnets() -> set[int]:
    """Third octets of ``10.213.N.*`` addresses and routes present in the root namespace."""
    used: set[int] = set()
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show")):
        out = _ip(*args, check=False).stdout
        for word in out.split():
            if word.startswith(SUBNET_FIRST_OCTETS + "."):
                parts = word.split("/")[0].split(".")
                if len(parts) == 4 and parts[2].isdigit():
                    used.add(int(parts[2]))
    return used


def plan(names: list[str]) -> Layout:
    """A fresh layout for ``names``: a random tag, a ``10.213.N.0/24`` not in use here."""
    if not names:
        raise DevnetError("a netns devnet needs at least one node")
    if len(names) > 254 - FIRST_HOST:
        raise DevnetError(f"a netns devnet holds at most {254 - FIRST_HOST} nodes on its /24")
    tag = secrets.token_hex(3)
    used = _used_subnets()
    start = int(tag, 16) % 254
    free = [1 + (start + i) % 254 for i in range(254) if 1 + (start + i) % 254 not in used]
    if not free:
        raise DevnetError(f"no free {SUBNET_FIRST_OCTETS}.N.0/24 subnet left on this machine")
    octet = free[0]
    net = f"{SUBNET_FIRST_OCTETS}.{octet}"
    nodes = tuple(NodeNamespace(name, f"{PREFIX}{tag}-{name}", f"{PREFIX}{tag}h{k}", f"{PREFIX}{tag}n{k}",
                                f"{net}.{FIRST_HOST + k}") for k, name in enumerate(names))
    return Layout(tag, f"{net}.0/24", f"{PREFIX}{tag}br", f"{net}.1", nodes)


def record(base: Path, layout: Layout) -> None:
    (Path(base) / NETNS_FILE).write_text(json.dumps(layout.to_json(), indent=2) + "\n")


def load_layout(base: Path) -> Layout | None:
    """The layout recorded in ``base`` (None: not a netns devnet)."""
    path = Path(base) / NETNS_FILE
    if not path.exists():
        return None
    try:
        return Layout.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise DevnetError(f"{path} is not a netns record ({exc})") from None


def netns_specs(base: Path, layout: Layout, port: int) -> list[NodeSpec]:
    """Each node on its namespace address, REST on ``port`` and p2p on ``port + 1000`` (the same for every
    node: each has an address of its own, as on separate machines)."""
    base = Path(base).resolve()
    return [NodeSpec(n.name, base / n.name, n.address, port, port + P2P_PORT_OFFSET) for n in layout.nodes]


def new_netns_network(base: Path, names: list[str], port: int) -> list[NodeSpec]:
    """Plan and record namespaces for ``names`` in ``base`` (nothing created yet: ``ensure`` does); the specs."""
    check_available()
    Path(base).mkdir(parents=True, exist_ok=True)
    layout = plan(names)
    record(base, layout)
    return netns_specs(base, layout, port)


def add_node(base: Path, name: str) -> NodeNamespace:
    """Record one more node's namespace in ``base``'s layout (the next free address on its subnet) and create
    it; the new entry.  For ``ledger-devnet add-node`` on a netns devnet."""
    layout = load_layout(base)
    if layout is None:
        raise DevnetError(f"{base} is not a netns devnet")
    if layout.node(name) is not None:
        return layout.node(name)  # type: ignore[return-value]  # just checked
    k = max((int(n.host_veth.rsplit("h", 1)[1]) for n in layout.nodes), default=-1) + 1
    if FIRST_HOST + k > 254:
        raise DevnetError(f"a netns devnet holds at most {254 - FIRST_HOST} nodes on its /24")
    net = layout.subnet.rsplit(".", 1)[0]
    entry = NodeNamespace(name, f"{PREFIX}{layout.tag}-{name}", f"{PREFIX}{layout.tag}h{k}",
                          f"{PREFIX}{layout.tag}n{k}", f"{net}.{FIRST_HOST + k}")
    record(base, Layout(layout.tag, layout.subnet, layout.bridge, layout.bridge_address, (*layout.nodes, entry)))
    ensure(base)
    return entry


# --------------------------------------------------------------------------- create and remove


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()}


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def ensure(base: Path) -> Layout | None:
    """Create whatever of ``base``'s recorded layout is missing (bridge, namespaces, veths, addresses);
    None when ``base`` is not a netns devnet.  On failure, whatever exists of it is removed again."""
    layout = load_layout(base)
    if layout is None:
        return None
    check_available()
    try:
        _create(layout)
    except BaseException:
        _remove(layout)
        raise
    return layout


def _create(layout: Layout) -> None:
    plen = layout.prefix_len
    if not _link_exists(layout.bridge):
        # frames between the nodes stay on the bridge: not passed through the host's iptables (br_netfilter),
        # whose FORWARD policy may drop them (Docker sets it so); older kernels lack the options
        if _ip("link", "add", layout.bridge, "type", "bridge", *BRIDGE_NO_NETFILTER, check=False).returncode:
            _ip("link", "add", layout.bridge, "type", "bridge")
        _ip("addr", "add", f"{layout.bridge_address}/{plen}", "dev", layout.bridge)
    _ip("link", "set", layout.bridge, "up")
    present = _namespaces()
    for n in layout.nodes:
        if n.netns not in present:
            _ip("netns", "add", n.netns)
        if not _link_exists(n.host_veth):
            _ip("link", "add", n.host_veth, "type", "veth", "peer", "name", n.node_veth, "netns", n.netns)
            _ip("-n", n.netns, "addr", "add", f"{n.address}/{plen}", "dev", n.node_veth)
        _ip("link", "set", n.host_veth, "master", layout.bridge, "up")
        _ip("-n", n.netns, "link", "set", n.node_veth, "up")
        _ip("-n", n.netns, "link", "set", "lo", "up")


def _remove(layout: Layout) -> list[str]:
    """Delete what of ``layout`` exists; the names removed."""
    removed = []
    present = _namespaces()
    for n in layout.nodes:
        if _link_exists(n.host_veth) and _ip("link", "del", n.host_veth, check=False).returncode == 0:
            removed.append(n.host_veth)
        if n.netns in present and _ip("netns", "del", n.netns, check=False).returncode == 0:
            removed.append(n.netns)
    if _link_exists(layout.bridge) and _ip("link", "del", layout.bridge, check=False).returncode == 0:
        removed.append(layout.bridge)
    return removed


def teardown(base: Path) -> list[str]:
    """Remove the bridge, veths and namespaces recorded in ``base`` (its nodes stopped first); the record stays,
    so a later ``up`` recreates them.  The names removed ([] when ``base`` is not a netns devnet)."""
    layout = load_layout(base)
    if layout is None:
        return []
    check_available()
    return _remove(layout)


def leftovers(layout: Layout) -> list[str]:
    """What of ``layout`` still exists (for checks after ``teardown``)."""
    present = _namespaces()
    out = [n.netns for n in layout.nodes if n.netns in present]
    out += [x for n in layout.nodes for x in (n.host_veth,) if _link_exists(x)]
    if _link_exists(layout.bridge):
        out.append(layout.bridge)
    return out


# --------------------------------------------------------------------------- starting a node inside


def node_prefix(spec: NodeSpec) -> list[str] | None:
    """``ip netns exec NS`` for a node of a netns devnet this tool made (its namespace address recorded in
    ``netns.json`` beside its home); None for any other node.  Raises when the namespace is gone."""
    layout = load_layout(Path(spec.home).parent)
    entry = layout.node(spec.name) if layout else None
    if entry is None or entry.address != spec.host:
        return None
    ip = check_available()
    if entry.netns not in _namespaces():
        raise DevnetError(f"{spec.name}'s network namespace {entry.netns} is gone (`ledger-devnet down` removed "
                          f"it): `ledger-devnet up` recreates it and starts the devnet")
    return [ip, "netns", "exec", entry.netns]
