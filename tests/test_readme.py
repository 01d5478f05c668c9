"""The README describes only what exists: its commands, routes, config keys and dependencies are checked
against the code (the walkthrough itself runs in test_readme_walkthrough.py)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

from devnet import cli as devnet_cli
from genesis.document import ConsensusParams
from node.config import NodeConfig
from wallet import cli as wallet_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def subcommands(parser) -> set[str]:
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return set(action.choices)
    return set()


def test_quick_start_is_two_make_targets():
    blocks = re.findall(r"```bash\n(.*?)```", section("Quick start"), re.S)
    assert blocks == ["make devnet\nmake test\n"]
    makefile = (ROOT / "Makefile").read_text()
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    assert {"devnet", "test", "test-all", "down", "lint"} <= named
    for target in named:  # every `make X` the README names is a target
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_every_cli_command_named_exists():
    from node.cli import build_parser as node_parser

    known = {
        "ledger-wallet": subcommands(wallet_cli.build_parser()),
        "ledger-devnet": subcommands(devnet_cli.build_parser()),
        "ledger-node": subcommands(node_parser(["--help"])),
    }
    seen = set()
    for tool, command in re.findall(r"(ledger-(?:wallet|devnet|node))((?: --?[\w-]+(?: [\w./$\"-]+)?)* [a-z][a-z-]*)?",
                                    README):
        words = [w for w in command.split() if not w.startswith("-")]
        if not words:
            continue
        # the first bare word after the options is the command, unless it is an option's value
        if not any(w in known[tool] for w in words):
            raise AssertionError(f"README mentions `{tool}{command}`: no such command")
        seen.update((tool, w) for w in words if w in known[tool])
    for tool, commands in known.items():
        documented = {c for t, c in seen if t == tool}
        reference = section("Command reference")
        for command in commands:
            assert f"`{command}" in reference or f"{command} " in reference, f"{tool} {command} is not documented"
        assert documented


def test_rest_routes_listed_exist():
    api = ROOT / "node" / "api"
    source = "".join(path.read_text() for path in [api / "app.py", *sorted(api.glob("*_routes.py"))])
    served = set(re.findall(r'@app\.(get|post)\("([^"]+)"', source))
    listed = set()
    for method, route in re.findall(r"`(GET|POST) (/[^`?\[ ]+)", section("REST API")):
        listed.add((method.lower(), route))
    assert listed, "no routes found in the README"
    assert listed <= served, f"README lists routes the API does not serve: {sorted(listed - served)}"
    for method, route in served:
        if route.startswith("/v1/"):
            assert (method, route) in listed, f"{method.upper()} {route} is missing from the README"


def test_configuration_keys_match_the_code():
    text = section("Configuration")
    for f in fields(NodeConfig):
        assert f"`{f.name}`" in text, f"config key {f.name} is not documented"
    documented = set(re.findall(r"^\| `([a-z_]+)`", text, re.M)) | set(re.findall(r"`([a-z_]+)`, `", text))
    assert documented <= {f.name for f in fields(NodeConfig)}
    for f in fields(ConsensusParams):
        assert f"`{f.name}` ({getattr(ConsensusParams(), f.name):,})" in text.replace("\n", " "), f.name


def test_dependencies_listed_with_reasons():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    text = section("Dependencies")
    for requirement in wanted:
        name = re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0]
        assert f"`{name}`" in text, f"{name} is not in the README's dependency list"
