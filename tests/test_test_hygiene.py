"""Every test is reproducible: its randomness comes from hypothesis or from a generator with a fixed seed.

Each file under tests/ is parsed with ``ast`` and these are refused:
``os.urandom``, anything from ``secrets``, ``uuid.uuid1``/``uuid.uuid4``,
``random.Random()`` without a seed (or seeded with ``None``),
``random.SystemRandom``, the module-level ``random.*`` functions (the shared,
unseeded generator: ``random.randint``, ``random.choice``, ``random.seed``, ...)
and the project's own key generator ``generate_private_key`` (``os.urandom``
underneath).  ``random.Random(<seed>)`` is fine, and so are the strategies
of hypothesis (``st.randoms()`` included: hypothesis seeds and replays it).
Aliases (``import random as r``, ``from os import urandom``) are followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

MODULE_SOURCES = {"secrets": "anything from secrets (OS randomness)"}
"""Modules every attribute of which is a source of unseeded randomness."""
NAME_SOURCES = {
    ("os", "urandom"): "os.urandom (OS randomness)",
    ("uuid", "uuid1"): "uuid.uuid1 (clock and random bits)",
    ("uuid", "uuid4"): "uuid.uuid4 (OS randomness)",
    ("random", "SystemRandom"): "random.SystemRandom (OS randomness, cannot be seeded)",
    ("node.crypto", "generate_private_key"): "generate_private_key (os.urandom underneath; "
                                             "use genesis.build.derive_private_key or a seeded generator)",
}
"""Single functions that are sources of unseeded randomness."""
SEEDED = ("random", "Random")
"""Fine with a seed argument that is not ``None``."""


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        """Local name -> the full dotted name it stands for (``r`` -> ``random``, ``urandom`` -> ``os.urandom``)."""
        self.findings: list[tuple[int, str]] = []
        self._calls: set[int] = set()

    # -- imports: names that stand for modules or functions
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module is None or node.level:
            return
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def resolve(self, node: ast.expr) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def judge(self, full: str, node: ast.expr, call: ast.Call | None) -> None:
        module, _, name = full.rpartition(".")
        if module in MODULE_SOURCES:
            self.findings.append((node.lineno, f"{full}: {MODULE_SOURCES[module]}"))
        elif (module, name) in NAME_SOURCES:
            self.findings.append((node.lineno, f"{full}: {NAME_SOURCES[(module, name)]}"))
        elif (module, name) == SEEDED:
            if call is None:
                return  # the class itself, e.g. in an annotation ``rng: random.Random``
            seed = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg in ("x", "seed")),
                                                       None)
            if seed is None or (isinstance(seed, ast.Constant) and seed.value is None):
                self.findings.append((node.lineno, "random.Random() without a seed"))
        elif module == "random" and name:
            self.findings.append((node.lineno, f"{full}: the module-level generator of random (unseeded, shared)"))

    def visit_Call(self, node: ast.Call) -> None:
        full = self.resolve(node.func)
        if full is not None:
            self._calls.add(id(node.func))
            self.judge(full, node.func, node)
        self.generic_visit(node)

    def _reference(self, node: ast.expr) -> None:
        if id(node) in self._calls:
            return
        full = self.resolve(node)
        if full is not None:
            self.judge(full, node, None)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _dotted(node) is None:  # ``f(x).y``: look inside
            self.generic_visit(node)
        elif isinstance(node.ctx, ast.Load):
            self._reference(node)  # a reference that is not called, e.g. ``map(os.urandom, ...)``
        # a dotted chain is judged whole: ``os.urandom`` is not judged again as ``os``

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id in self.aliases and "." in self.aliases[node.id]:
            self._reference(node)  # ``from os import urandom`` then ``urandom`` passed around


def findings(source: str, filename: str = "<test>") -> list[tuple[int, str]]:
    finder = _Finder()
    finder.visit(ast.parse(source, filename))
    return sorted(set(finder.findings))


def test_no_unseeded_randomness_under_tests():
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS.parent)
        for line, what in findings(path.read_text(encoding="utf-8"), str(path)):
            problems.append(f"{rel}:{line}: {what}")
    assert not problems, ("randomness in tests must come from hypothesis or a seeded generator "
                          "(random.Random(<seed>)):\n" + "\n".join(problems))


@pytest.mark.parametrize("source", [
    "import os\nos.urandom(8)",
    "import os\nf(os.urandom(3)).hex()",
    "import os\nx = [b.hex() for b in (os.urandom(3),)]",
    "from os import urandom\nurandom(8)",
    "from os import urandom as u\nkeys = list(map(u, [8]))",
    "import secrets\nsecrets.token_hex(4)",
    "from secrets import token_bytes\ntoken_bytes(4)",
    "import uuid\nuuid.uuid4()",
    "import random\nrandom.Random()",
    "import random\nrandom.Random(None)",
    "import random\nrandom.randint(1, 6)",
    "import random\nrandom.seed(1)",
    "import random as r\nr.choice([1, 2])",
    "from random import shuffle\nshuffle([])",
    "from random import Random\nRandom()",
    "import random\nrandom.SystemRandom(1)",
    "from node.crypto import generate_private_key\ngenerate_private_key()",
    "from node import crypto\ncrypto.generate_private_key()",
])
def test_the_check_finds_unseeded_randomness(source):
    assert findings(source), source


@pytest.mark.parametrize("source", [
    "import random\nrng = random.Random(7)\nrng.randbytes(32)",
    "import random\nrandom.Random(x=3)",
    "from random import Random\nRandom(seed)",
    "import random\ndef f(rng: random.Random) -> random.Random:\n    return rng",
    "from hypothesis import strategies as st\nst.randoms(use_true_random=False)",
    "import os\nos.path.join('a', 'b')",
    "import uuid\nuuid.UUID(int=1)",
    "rng = make()\nrng.random()",
])
def test_the_check_lets_seeded_randomness_pass(source):
    assert findings(source) == [], source
