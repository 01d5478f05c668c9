"""What every ``ledger-devnet`` command shares: its console, its one-line errors, its defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devnet.cluster import NodeSpec, load_network

DEFAULT_HOME = ".devnet"
DEFAULT_BASE_PORT = 26657
WALLETS_DIR = "wallets"
UP_TIMEOUT_S = 60.0
START_TIMEOUT_S = 30.0


def console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _specs(args: argparse.Namespace) -> list[NodeSpec]:
    return load_network(Path(args.home))
