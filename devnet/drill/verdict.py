"""The drill's verdict: each check's outcome, the result of a drill, and the verdict table it prints."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass
class Check:
    name: str
    value: str
    ok: bool | None
    """True pass, False violation, None information."""


@dataclass
class DrillResult:
    ok: bool
    checks: list[Check]
    violations: list[str]
    report: dict


def format_table(result: DrillResult, opts) -> str:
    """The verdict as a plain-text table (long values wrap onto continuation lines); ``opts``: DrillOptions."""
    width = 64
    rows = [(c.name, textwrap.wrap(c.value, width) or [""], {True: "PASS", False: "FAIL", None: ""}[c.ok])
            for c in result.checks]
    w1 = max(len(r[0]) for r in rows)
    title = (f"drill verdict: seed {opts.seed}, {opts.duration_s:g}s, {opts.validators} validators, "
             f"faults {','.join(opts.faults) or 'none'}")
    rule = "-" * (w1 + width + 8)
    lines = [title, rule]
    for name, values, ok in rows:
        lines.append(f"{name:<{w1}}  {values[0]:<{width}}  {ok}".rstrip())
        lines += [f"{'':<{w1}}  {more}" for more in values[1:]]
    lines.append(rule)
    lines.append("VERDICT: " + ("PASS" if result.ok else f"FAIL ({len(result.violations)} violations)"))
    for v in result.violations:
        lines.append(f"  violation: {v[:600]}")
    return "\n".join(lines)
