"""``ledger-devnet``'s arguments: the parser of every built-in subcommand with its options and help, the
argparse number types they use, and the bench and drill plugins, which parse their own.

The handlers of ``up`` and ``init`` live in ``devnet.cli`` (which imports this module), so they are passed in.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from devnet.cli_common import DEFAULT_BASE_PORT, DEFAULT_HOME, START_TIMEOUT_S, UP_TIMEOUT_S, fail
from devnet.node_commands import (
    cmd_add_node,
    cmd_down,
    cmd_kill,
    cmd_logs,
    cmd_pause,
    cmd_resume,
    cmd_start,
    cmd_status,
    cmd_stop,
    cmd_url,
)

Handler = Callable[[argparse.Namespace], int]
"""A subcommand's handler: the parsed arguments in, the exit status out."""

# --------------------------------------------------------------------------- bench and drill (other modules)

PLUGINS = {
    "bench": ("devnet.bench.cli", "add_bench_arguments", "run_bench", "measure throughput and latency of a devnet"),
    "drill": ("devnet.drill.cli", "add_drill_arguments", "run_drill",
              "fault drills: crashes, partitions, slow links, Byzantine twin and tamperer, lag, bad clocks"),
}


def run_plugin(name: str, argv: list[str]) -> int:
    module_name, add_name, run_name, help_text = PLUGINS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            return fail(f"`ledger-devnet {name}` is not available: module {module_name} is not installed", 2)
        raise
    parser = argparse.ArgumentParser(prog=f"ledger-devnet {name}", description=help_text)
    getattr(module, add_name)(parser)
    args = parser.parse_args(argv)
    return int(getattr(module, run_name)(args) or 0)


# --------------------------------------------------------------------------- parser


def _number(kind, low: float, what: str):
    """An argparse ``type`` that accepts a ``kind`` number >= ``low`` (bad values: usage error, exit 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value >= low:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


positive_int = _number(int, 1, "a positive integer")
non_negative_int = _number(int, 0, "a non-negative integer")
positive_float = _number(float, 1e-9, "a positive number")


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return value


def build_command_parser(description: str | None, cmd_up: Handler, cmd_init: Handler) -> argparse.ArgumentParser:
    """The ``ledger-devnet`` parser: ``description`` heads its help, ``cmd_up`` and ``cmd_init`` handle ``up``
    and ``init``."""
    parser = argparse.ArgumentParser(prog="ledger-devnet", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from node import release
    parser.add_argument("--version", action="version", version=f"ledger-devnet {release()}")
    sub = parser.add_subparsers(dest="command", required=True)

    parser.add_argument("--home", default=DEFAULT_HOME, help="devnet folder (default %(default)s); also accepted "
                                                              "after the command")

    def with_home(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--home", default=argparse.SUPPRESS, help=f"devnet folder (default {DEFAULT_HOME})")
        return p

    p = with_home(sub.add_parser("up", help="create (first time) and start the devnet, wait for height 1"))
    p.add_argument("--validators", type=positive_int, default=4, help="validators of a new devnet (default 4)")
    p.add_argument("--fresh", action="store_true", help="stop and wipe an existing devnet first (refused while its "
                                                        "wallets folder holds files it did not write)")
    p.add_argument("--delete-wallets", dest="delete_wallets", action="store_true",
                   help="with --fresh: delete such wallet files too")
    p.add_argument("--base-port", type=port_number, default=DEFAULT_BASE_PORT,
                   help="first REST port when the ports from here are free (else any free ports); 0: any")
    p.add_argument("--chain-id", default=None,
                   help="chain id of a new devnet (default: devnet- and 8 random hex digits, one per devnet)")
    p.add_argument("--demo-wallets", type=non_negative_int, default=3, help="funded wallets besides the faucet")
    p.add_argument("--timeout", type=positive_float, default=UP_TIMEOUT_S, help="seconds to reach height 1")
    p.add_argument("--netns", action="store_true",
                   help="each node in its own network namespace with its own 10.213.N.k address on a bridge "
                        "(REST on --base-port, p2p 1000 above, on every node); needs root and `ip`")
    p.set_defaults(func=cmd_up)

    p = with_home(sub.add_parser("down", help="stop every node (data kept); remove a netns devnet's namespaces"))
    p.set_defaults(func=cmd_down)

    p = with_home(sub.add_parser("status", help="per node: pid, running, height, app hash, peers"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=positive_float, default=1.0, help="seconds to wait for each node's answer")
    p.set_defaults(func=cmd_status)

    p = with_home(sub.add_parser("logs", help="print a node's log (-f: follow until Ctrl-C)"))
    p.add_argument("node", help="node name (validator-0) or index (0)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    p.add_argument("-n", "--lines", type=non_negative_int, default=100, help="last N lines (0: all)")
    p.set_defaults(func=cmd_logs)

    p = with_home(sub.add_parser("url", help="print a node's REST URL"))
    p.add_argument("node", help="node name (validator-0) or index (0)")
    p.set_defaults(func=cmd_url)

    for name, func, text in (("kill", cmd_kill, "SIGKILL a node (a crash)"),
                             ("stop", cmd_stop, "SIGTERM a node (clean stop)"),
                             ("pause", cmd_pause, "SIGSTOP a node (frozen, sockets open)"),
                             ("resume", cmd_resume, "SIGCONT a paused node")):
        p = with_home(sub.add_parser(name, help=text))
        p.add_argument("node", help="node name (validator-0) or index (0)")
        p.set_defaults(func=func)

    p = with_home(sub.add_parser("start", help="start a stopped or killed node (or --all: every stopped one) and "
                                               "wait until it answers"))
    p.add_argument("node", nargs="?", help="node name (validator-0) or index (0)")
    p.add_argument("--all", action="store_true", help="start every node that is not running")
    p.add_argument("--timeout", type=positive_float, default=START_TIMEOUT_S,
                   help=f"seconds to wait until it answers (default {START_TIMEOUT_S:g})")
    p.set_defaults(func=cmd_start)

    p = with_home(sub.add_parser("add-node", help="add a full node (follows the chain, never votes) to the running "
                                                  "devnet, wait until it has caught up, print its name"))
    p.add_argument("--name", help="its name and folder (default full-N)")
    p.add_argument("--json", action="store_true", help="print name, REST URL and height as JSON")
    p.add_argument("--state-sync", dest="state_sync", action="store_true",
                   help="start it from a snapshot its peers offer (checked from the genesis) instead of replaying "
                        "every block")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds to catch up (default 60)")
    p.set_defaults(func=cmd_add_node)

    from devnet.reconfig_commands import add_reconfig_parsers
    add_reconfig_parsers(sub, with_home, positive_float)

    p = sub.add_parser("init", help="write node homes for a network across machines (starts nothing)")
    p.add_argument("--validators", type=positive_int, required=True, help="how many validators")
    p.add_argument("--hosts", required=True, help="comma-separated hosts; validator i goes to host i mod count")
    p.add_argument("--out", required=True, help="the folder to write the homes in (must not hold a devnet)")
    p.add_argument("--base-port", type=port_number, default=DEFAULT_BASE_PORT,
                   help="REST port of the first node on each host (default %(default)s); p2p ports are 1000 above")
    p.add_argument("--chain-id", default=None, help="chain id (default: ledger- and 8 random hex digits)")
    p.set_defaults(func=cmd_init)

    for name, (_m, _a, _r, text) in PLUGINS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser
