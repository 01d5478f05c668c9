"""Which package may import which: the layering of README's Architecture section, checked on the source.

Every import statement of every module is read with ``ast``, wherever it stands (top level, inside a
function, under ``if TYPE_CHECKING``), so a rule cannot be dodged by importing late.

- ``node/types``, ``node/crypto.py``, ``node/encoding.py``, ``node/errors.py`` are the neutral base:
  they import nothing else of ours.
- ``node/ledger`` (execution) imports nothing from ``node.consensus``, ``node.p2p``, ``node.api``.
- ``node/consensus`` imports nothing from ``node.ledger``, ``node.p2p``, ``node.api``.
- ``wallet/`` imports nothing from ``node.runtime`` or ``node.api``.
- ``genesis/`` imports from ``node`` only the neutral base, so the dependency is one-way: the node imports
  ``genesis``, and nothing ``genesis`` imports leads back to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEUTRAL = ("node.types", "node.crypto", "node.encoding", "node.errors")
"""What every layer may import, genesis included: records, encodings, crypto and the error shape."""
OURS = ("node", "genesis", "wallet", "devnet", "simulation", "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name an import in ``source`` may load: for ``from a.b import c``, both ``a.b`` and
    ``a.b.c`` (``c`` may be a submodule).  Relative imports are resolved against ``module``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def sources(*paths: str) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        path = ROOT / p
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    assert found, paths
    return found


def imports_of(*paths: str) -> dict[str, set[str]]:
    """Module name -> what it imports, for every module under ``paths``."""
    return {module_name(f): imported_names(f.read_text(), module_name(f), f.name == "__init__.py")
            for f in sources(*paths)}


def forbidden(imports: dict[str, set[str]], banned: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} imports {name}" for module, names in imports.items() for name in names
                  if any(within(name, b) for b in banned))


def outside(imports: dict[str, set[str]], allowed: tuple[str, ...]) -> list[str]:
    """Imports of our own packages other than ``allowed``.  A bare top-level package (the ``node`` of
    ``from node import x``) is passed over: what counts is ``node.x``."""
    return sorted(f"{module} imports {name}" for module, names in imports.items() for name in names
                  if name not in OURS and any(within(name, o) for o in OURS)
                  and not any(within(name, a) for a in allowed))


def top_level_definitions(tree: ast.Module):
    """Names a module defines at its top level: classes, functions and assigned names."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name
        elif isinstance(node, ast.Assign):
            yield from (t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id


def test_the_neutral_base_imports_nothing_above_it():
    imports = imports_of("node/types", "node/crypto.py", "node/encoding.py", "node/errors.py")
    assert "node.types.block" in imports and "node.types.commit" in imports
    assert outside(imports, NEUTRAL) == []


def test_the_ledger_does_not_import_consensus_p2p_or_api():
    imports = imports_of("node/ledger")
    assert "node.ledger.store" in imports and "node.ledger.chain" in imports
    assert forbidden(imports, ("node.consensus", "node.p2p", "node.api")) == []


def test_consensus_does_not_import_the_ledger_p2p_or_api():
    imports = imports_of("node/consensus")
    assert "node.consensus.driver" in imports and "node.consensus.certificate" in imports
    assert forbidden(imports, ("node.ledger", "node.p2p", "node.api")) == []


def test_the_wallet_does_not_import_the_runtime_or_api():
    imports = imports_of("wallet")
    assert "wallet.verify" in imports and "wallet.cli" in imports
    assert forbidden(imports, ("node.runtime", "node.api")) == []


def test_genesis_imports_only_the_neutral_base_of_node():
    imports = imports_of("genesis")
    assert "genesis.document" in imports and "genesis.build" in imports
    assert outside(imports, ("genesis",) + NEUTRAL) == []


def test_the_shared_records_live_in_one_place():
    """``Commit``, ``Header``, ``Block`` and the hash sizes are defined once, in ``node.types``."""
    defined: dict[str, list[str]] = {}
    for f in sources("node", "wallet", "genesis"):
        for name in top_level_definitions(ast.parse(f.read_text())):
            defined.setdefault(name, []).append(module_name(f))
    for name, home in [("HASH_SIZE", "node.types.hashes"), ("ZERO_HASH", "node.types.hashes"),
                       ("Commit", "node.types.commit"), ("CommitSig", "node.types.commit"),
                       ("Header", "node.types.block"), ("Block", "node.types.block"),
                       ("Transaction", "node.types.transaction"), ("ValidatorSet", "node.types.validators"),
                       ("GenesisError", "genesis.errors")]:
        assert defined.get(name) == [home], (name, defined.get(name))


@pytest.mark.parametrize("source, module, expected", [
    ("import node.api.app", "wallet.x", {"node.api.app"}),
    ("def f():\n    from node.consensus import messages\n", "node.ledger.x",
     {"node.consensus", "node.consensus.messages"}),
    ("if TYPE_CHECKING:\n    from node.runtime import Node\n", "node.status", {"node.runtime", "node.runtime.Node"}),
    ("from ..consensus.messages import Vote", "node.ledger.chain", {"node.consensus.messages",
                                                                    "node.consensus.messages.Vote"}),
    ("from . import store", "node.ledger", {"node.ledger", "node.ledger.store"}),
])
def test_imports_are_found_wherever_they_stand(source, module, expected):
    is_package = module == "node.ledger"
    assert imported_names(source, module, is_package) == expected


def test_the_rules_catch_a_late_import():
    imports = {"node.ledger.x": imported_names("def f():\n    from node import consensus\n", "node.ledger.x")}
    assert forbidden(imports, ("node.consensus",)) == ["node.ledger.x imports node.consensus"]
    imports = {"genesis.x": imported_names("def f():\n    from node.consensus.validators import V\n", "genesis.x")}
    assert outside(imports, ("genesis",) + NEUTRAL) == ["genesis.x imports node.consensus.validators",
                                                        "genesis.x imports node.consensus.validators.V"]
