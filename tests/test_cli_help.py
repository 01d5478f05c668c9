"""Every option and argument of every command has a help text (``--help`` is the reference users read)."""

from __future__ import annotations

import argparse

from devnet.bench.cli import build_parser as bench_parser
from devnet.cli import build_parser as devnet_parser
from devnet.drill.cli import add_drill_arguments
from genesis.cli import build_parser as genesis_parser
from node.cli import build_parser as node_parser
from wallet.cli import build_parser as wallet_parser


def without_help(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += without_help(sub, f"{prefix} {name}")
        elif isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        elif not action.help:
            missing.append(f"{prefix}: {'/'.join(action.option_strings) or action.dest}")
    return missing


def drill_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger-devnet drill")
    add_drill_arguments(parser)
    return parser


def test_every_option_has_help():
    parsers = {"ledger-node": node_parser(["simulate"]), "ledger-wallet": wallet_parser(),
               "ledger-devnet": devnet_parser(), "ledger-devnet bench": bench_parser(),
               "ledger-devnet drill": drill_parser(), "ledger-genesis": genesis_parser()}
    missing = [line for name, parser in parsers.items() for line in without_help(parser, name)]
    assert missing == []
