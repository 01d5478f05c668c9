"""The drill's network: node homes and processes, the per-link proxy between them, and the twin.

``names`` are every node process of the drill: the genesis validators, then
the nodes a ``reconfig`` step adds (``add_node``).  ``members`` is the
validator set now (name -> power), kept by the reconfiguration steps from
the nodes' own answers; faults and checks take "the validators" from it.

Peer addresses point at the proxy (``devnet/proxy.py``, one port per ordered pair
of nodes) so links can be cut and slowed one by one; clients talk to the
nodes' own ports.  Homes are written by ``devnet.cluster``; the drill keeps
every process it starts (``subprocess.Popen``) and signals it by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import tomli_w

from devnet.cluster import (
    LOG_FILE,
    STDOUT_FILE,
    NodeSpec,
    copy_home,
    devnet_params,
    free_ports,
    local_specs,
    start_node,
    start_process,
    write_homes,
)
from devnet.cluster.full_nodes import add_full_node
from devnet.cluster.termination import terminate_deferred
from devnet.drill.plan import validator_names
from devnet.proxy import LinkProxy
from genesis.build import derive_private_key, make_genesis
from node.config import CONFIG_FILE, KEY_FILE, NodeConfig
from node.crypto import address_hash, derive_public_key
from node.home import load_key_file
from node.ledger.state import genesis_txid
from node.p2p.secret import node_id_of
from node.types.transaction import COIN, OutPoint

TWIN_NAME = "twin"
COMMIT_WAIT_MS = 10_000
MIN_HEIGHT_WAIT_MS = 4_000
NODE_OVERRIDES: dict[str, object] = {
    "log_level": "INFO",
    "commit_wait_ms": COMMIT_WAIT_MS,
    "min_height_wait_ms": MIN_HEIGHT_WAIT_MS,
    "peer_timeout_ms": 2_000,
    "sync_interval_ms": 500,
}
GENESIS_OUTPUT = 1_000 * COIN


class DrillNetwork:
    """Node homes and processes (validators of genesis, nodes added later), the per-link proxy, and the twin."""

    def __init__(self, base: Path, seed: int, validators: int, accounts: int, outputs_per_account: int,
                 with_twin: bool, twin_victim: str | None, out=print):
        self.base = Path(base).resolve()
        self.seed = seed
        self.out = out
        self.started_wall = time.time()
        """Wall-clock time before the genesis was made: no honest block time is earlier."""
        self.names = validator_names(validators)
        seed_bytes = f"drill-{seed}".encode()
        self.account_keys = [derive_private_key(seed_bytes, f"account-{i}") for i in range(accounts)]
        self.account_addresses = [address_hash(derive_public_key(k)) for k in self.account_keys]
        allocations = [(self.account_addresses[i], GENESIS_OUTPUT)
                       for _ in range(outputs_per_account) for i in range(accounts)]
        self.genesis, self.validator_keys = make_genesis(f"drill-{seed}", validators, allocations,
                                                         params=devnet_params(), seed=seed_bytes)
        self.chain_id = self.genesis.chain_id
        self.members: dict[str, int] = {v.name: v.power for v in self.genesis.validators}
        """The validator set now, name -> power (``reconfig`` steps keep it)."""
        self.keys: dict[str, bytes] = dict(self.validator_keys)
        """Every node's private key by name, genesis validators and added nodes."""
        self.supply = self.genesis.total_supply
        self.with_twin = with_twin
        self.twin_victim = twin_victim
        self.proxy = LinkProxy(seed=seed)
        self.specs: dict[str, NodeSpec] = {}
        self.procs: dict[str, subprocess.Popen | None] = {}
        self.all_procs: list[subprocess.Popen] = []
        self.expected: dict[str, bool] = {}
        """Whether a process should be running now (for crash detection)."""
        self.paused: set[str] = set()
        self.unexpected_exits: list[dict] = []

    @property
    def validator_addresses(self) -> dict[str, bytes]:
        """Name -> account address of every key that is or was or may become a validator (genesis, added)."""
        return {name: address_hash(derive_public_key(key)) for name, key in self.keys.items()}

    def name_of(self, address: bytes) -> str | None:
        return next((n for n, a in self.validator_addresses.items() if a == address), None)

    def genesis_outputs(self) -> dict[int, list[tuple[OutPoint, int]]]:
        """Account index -> its genesis outputs."""
        out: dict[int, list[tuple[OutPoint, int]]] = {i: [] for i in range(len(self.account_keys))}
        index_of = {a: i for i, a in enumerate(self.account_addresses)}
        txid = genesis_txid(self.chain_id)
        for n, alloc in enumerate(self.genesis.allocations):
            out[index_of[alloc.address]].append((OutPoint(txid, n), alloc.amount))
        return out


    async def setup(self) -> None:
        """Homes for every validator (peers: the proxy's links) and the twin, and the proxy itself."""
        specs = local_specs(self.base, self.names)
        self.specs = {s.name: s for s in specs}
        if self.with_twin:
            taken = {s.port for s in specs} | {s.p2p_port for s in specs}
            port, p2p_port = [p for p in free_ports(len(taken) + 2) if p not in taken][:2]
            self.specs[TWIN_NAME] = NodeSpec(TWIN_NAME, self.base / TWIN_NAME, "127.0.0.1", port, p2p_port)
        members = list(self.specs)
        for src in members:
            for dst in members:
                if src != dst and not (src == TWIN_NAME and dst == TWIN_NAME):
                    self.proxy.add_link(src, dst, self.specs[dst].p2p_port)
        await self.proxy.start(avoid={p for s in self.specs.values() for p in (s.port, s.p2p_port)})
        keys = dict(self.validator_keys)
        if self.with_twin and self.twin_victim is not None:
            keys[TWIN_NAME] = self.validator_keys[self.twin_victim]
        peers = {name: tuple(f"{node_id_of(derive_public_key(keys[other]))}@{self.proxy.address(name, other)}"
                             for other in members if other != name) for name in members}
        write_homes(self.base, self.genesis, self.validator_keys, specs, NODE_OVERRIDES, peers=peers)
        if self.with_twin:
            if self.twin_victim is None:
                raise ValueError("a twin needs the validator it copies (twin_victim)")
            spec = self.specs[TWIN_NAME]
            config = NodeConfig(name=TWIN_NAME, host=spec.host, port=spec.port, p2p_port=spec.p2p_port,
                                peers=peers[TWIN_NAME],
                                log_file=str(spec.home / LOG_FILE)).with_overrides(NODE_OVERRIDES)
            copy_home(specs[0].home, spec.home, self.validator_keys[self.twin_victim], config)
        for name in members:
            self.procs[name] = None
            self.expected[name] = False

    async def add_node(self, name: str) -> NodeSpec:
        """A full node's home (``add_full_node``: its own key, the genesis), its links through the proxy to every
        node (the twin's too), added to ``names``; not started."""
        spec = add_full_node(self.base, name, dict(NODE_OVERRIDES))
        used = {p for s in self.specs.values() for p in (s.port, s.p2p_port)}
        if {spec.port, spec.p2p_port} & (used | {link.port for link in self.proxy.links.values()}):
            raise RuntimeError(f"{name}: ports {spec.port}/{spec.p2p_port} clash with the drill's")
        others = list(self.specs)
        for other in others:
            self.proxy.add_link(name, other, self.specs[other].p2p_port)
            self.proxy.add_link(other, name, spec.p2p_port)  # nobody dials it, but cuts name both ways
        await self.proxy.start(avoid=used | {spec.port, spec.p2p_port})
        key = load_key_file(spec.home / KEY_FILE).private_key
        keys = dict(self.keys)
        if TWIN_NAME in self.specs and self.twin_victim is not None:
            keys[TWIN_NAME] = self.keys[self.twin_victim]
        peers = [f"{node_id_of(derive_public_key(keys[other]))}@{self.proxy.address(name, other)}" for other in others]
        set_config(spec.home, peers=peers)
        self.specs[name] = spec
        self.keys[name] = key
        self.names.append(name)
        self.procs[name] = None
        self.expected[name] = False
        return spec

    # ------------------------------------------------------------------ processes

    def start(self, name: str) -> int:
        with terminate_deferred():  # started and recorded for the clean-up, or neither
            proc = start_node(self.specs[name])
            self.all_procs.append(proc)
        self.procs[name] = proc
        self.expected[name] = True
        self.paused.discard(name)
        return proc.pid

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    async def kill(self, names: list[str]) -> list[int]:
        """SIGKILL ``names`` at once (by pid) and reap them."""
        pids = []
        for name in names:
            self.expected[name] = False
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                pids.append(proc.pid)
        for name in names:
            proc = self.procs.get(name)
            if proc is not None:
                for _ in range(200):
                    if proc.poll() is not None:
                        break
                    await asyncio.sleep(0.05)
            self.paused.discard(name)
        return pids

    def pause(self, name: str) -> int | None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return None
        os.kill(proc.pid, signal.SIGSTOP)
        self.paused.add(name)
        return proc.pid

    def resume(self, name: str) -> int | None:
        proc = self.procs.get(name)
        self.paused.discard(name)
        if proc is None or proc.poll() is not None:
            return None
        os.kill(proc.pid, signal.SIGCONT)
        return proc.pid

    async def terminate(self, name: str, timeout_s: float = 8.0) -> None:
        """SIGCONT + SIGTERM, then SIGKILL if it lingers; by pid."""
        self.expected[name] = False
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
        for _ in range(int(timeout_s / 0.05)):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        for _ in range(100):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)

    def check_crashes(self) -> list[dict]:
        """Processes that should run but exited on their own; each is reported once and restarted."""
        found = []
        for name, proc in self.procs.items():
            if self.expected.get(name) and proc is not None and proc.poll() is not None:
                record = {"node": name, "pid": proc.pid, "exit_code": proc.returncode,
                          "log_tail": self.log_tail(name, 15)}
                self.unexpected_exits.append(record)
                found.append(record)
                self.out(f"!! {name} (pid {proc.pid}) exited on its own with code {proc.returncode}")
                self.start(name)
        return found

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.specs[name].home / STDOUT_FILE
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Stop every process this drill started (by pid), synchronously; safe to call twice."""
        for proc in self.all_procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for proc in self.all_procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def url(self, name: str) -> str:
        return self.specs[name].url

    def start_byzantine(self, name: str, tamper_to: list[str], *, equivocate: bool = False) -> int:
        """Start ``python -m devnet.byzantine`` on ``name``'s home in place of its honest process (``equivocate``:
        the twin's mode, a conflicting nil vote for each block vote)."""
        spec = self.specs[name]
        command = [sys.executable, "-m", "devnet.byzantine", "--home", str(spec.home), "--seed", str(self.seed)]
        command += ["--equivocate"] if equivocate else ["--tamper-to", ",".join(tamper_to)]
        with terminate_deferred():
            proc = start_process(spec, command, write_pid=False)
            self.all_procs.append(proc)
        self.procs[name] = proc
        self.expected[name] = True
        self.paused.discard(name)
        return proc.pid


# --------------------------------------------------------------------------- a validator's clock


def clock_offset_supported() -> bool:
    return "clock_offset_ms" in {f.name for f in dataclasses.fields(NodeConfig)}


def set_clock_offset(home: Path, offset_ms: int) -> None:
    """Write ``clock_offset_ms`` into the home's config.toml (read on the next start)."""
    set_config(home, clock_offset_ms=int(offset_ms))


def set_config(home: Path, **values: object) -> None:
    """Set keys of the home's config.toml (read on the next start)."""
    path = Path(home) / CONFIG_FILE
    data = tomllib.loads(path.read_text())
    data.update(values)
    path.write_text(tomli_w.dumps(data))
