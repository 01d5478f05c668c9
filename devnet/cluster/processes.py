"""Node processes: start, signal, stop, and whether a home's node is running.

Every node is a real ``ledger-node start`` process (``python -m node.cli
start --home HOME``) in its own session, bound to loopback; it writes its
log to ``HOME/node.log``, its stdout and stderr go to ``HOME/stdout.log`` and
its pid to ``HOME/node.pid``.  Processes are only ever signalled by the pid
in that file, and only while that pid is still this home's node.  A node of
a netns devnet (``devnet.cluster.netns``) runs as ``ip netns exec NS
<command>``, bound to its namespace's address; ``ip`` execs the command, so
the pid is still the node's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devnet.cluster.netns import node_prefix
from devnet.cluster.spec import PID_FILE, STDOUT_FILE, DevnetError, NodeSpec, is_loopback

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: node processes run from here."""


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


def node_running(spec: NodeSpec) -> bool:
    return pid_alive(read_pid(spec.home))


def start_process(spec: NodeSpec, command: list[str], extra_env: dict[str, str] | None = None,
                  write_pid: bool = True, prefix: list[str] | None = None) -> subprocess.Popen:
    """Run ``command`` for ``spec``'s home in the background, in its own session, from the repository root,
    its output appended to ``HOME/stdout.log``; the pid goes to ``HOME/node.pid`` when ``write_pid``.

    ``prefix`` runs it through a wrapper that execs it (``ip netns exec NS``), so the pid stays its own."""
    env = dict(os.environ)
    env.update(extra_env or {})
    with open(spec.home / STDOUT_FILE, "ab") as out:
        proc = subprocess.Popen([*(prefix or []), *command], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(ROOT), start_new_session=True)
    if write_pid:
        (spec.home / PID_FILE).write_text(str(proc.pid))
    return proc


def start_node(spec: NodeSpec, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``ledger-node start`` for ``spec`` in the background (its own session); a node of a netns devnet
    this tool made (``netns.json``) inside its namespace, any other node only on loopback."""
    prefix = None if is_loopback(spec.host) else node_prefix(spec)
    if prefix is None and not is_loopback(spec.host):
        raise DevnetError(f"{spec.name} binds to {spec.host}, not loopback: start it on its own machine with "
                          f"`ledger-node start --home {spec.home}`")
    if node_running(spec):
        raise DevnetError(f"{spec.name} is already running (pid {read_pid(spec.home)})")
    return start_process(spec, node_command(spec.home), extra_env, prefix=prefix)


def start_nodes(specs: list[NodeSpec]) -> list[subprocess.Popen]:
    return [start_node(spec) for spec in specs]


def signal_node(spec: NodeSpec, sig: int) -> bool:
    """Send ``sig`` to ``spec``'s node; False when it is not running."""
    pid = read_pid(spec.home)
    if pid is None or not pid_alive(pid):
        return False
    os.kill(pid, sig)
    return True


def wait_stopped(spec: NodeSpec, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not node_running(spec):
            return True
        time.sleep(0.05)
    return False


def stop_node(spec: NodeSpec, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not stopped in time; also resumes a paused node first."""
    stop_nodes([spec], timeout_s)


def stop_nodes(specs: list[NodeSpec], timeout_s: float = 10.0) -> list[tuple[NodeSpec, int]]:
    """SIGCONT and SIGTERM to every running node at once, one shared wait, SIGKILL to stragglers.

    Returns the (node, pid) pairs that were running.
    """
    running: list[tuple[NodeSpec, int]] = []
    for spec in specs:
        pid = read_pid(spec.home)
        if pid is not None and pid_alive(pid):
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
