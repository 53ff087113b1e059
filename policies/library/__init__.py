"""The bundled policy library: YAML files in this folder, one list of policies each.

Expressions are plain CEL once loaded; two macros keep the YAML readable:
- `$containers`: every container of a Pod (containers, initContainers, ephemeralContainers);
- `opt(a.b.c, default)`: `a.b.c` when every field on the way is set, else `default`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
FILES = ("pss-baseline.yaml", "pss-restricted.yaml", "operational.yaml")

CONTAINERS = (
    "(object.spec.containers"
    " + (has(object.spec.initContainers) ? object.spec.initContainers : [])"
    " + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : []))"
)
_OPT = re.compile(r"opt\(([A-Za-z_][\w.]*),\s*([^()]*?)\)")


def _opt(match: re.Match[str]) -> str:
    path, default = match.group(1), match.group(2).strip()
    parts = path.split(".")
    checks = [f"has({'.'.join(parts[: i + 1])})" for i in range(1, len(parts))]
    return f"(({' && '.join(checks)}) ? {path} : {default})"


def expand(expression: str) -> str:
    """Plain CEL for a library expression."""
    return _OPT.sub(_opt, expression.replace("$containers", CONTAINERS)).strip()


@cache
def library() -> tuple[dict[str, Any], ...]:
    """Every bundled policy, macros expanded, in file order."""
    policies: list[dict[str, Any]] = []
    for name in FILES:
        for policy in yaml.safe_load((HERE / name).read_text()):
            for rule in policy.get("rules", []):
                if rule.get("expression"):
                    rule["expression"] = expand(rule["expression"])
            policies.append(policy)
    return tuple(policies)
