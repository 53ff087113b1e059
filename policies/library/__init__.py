"""The bundled policy library: YAML files in this folder, one list of policies each.

Expressions are plain CEL once loaded; a few macros keep the YAML readable:
- `$containers`: every container of a Pod (containers, initContainers, ephemeralContainers);
- `opt(a.b.c, default)`: `a.b.c` when every field on the way is set, else `default`;
- `{{since v1.32: text}}`: `text` when the library is read at Pod Security Standards
  version 1.32 or later, else nothing; `{{until v1.32: text}}`: the opposite.

A policy's `since` (e.g. `v1.34`) is the first standard version that has the control:
read at an older version, its rules accept every object (the control does not exist
there), as Pod Security Admission does with an older `enforce-version`.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
FILES = ("pss-baseline.yaml", "pss-restricted.yaml", "operational.yaml")

# Versions of the Pod Security Standards a policy can be pinned to (PSA's
# `enforce-version`); "latest" is the newest one the library knows.
PSS_VERSIONS = tuple(f"v1.{minor}" for minor in range(29, 38))
LATEST = "latest"
PSS_VERSION_CHOICES = (*PSS_VERSIONS, LATEST)

CONTAINERS = (
    "(object.spec.containers"
    " + (has(object.spec.initContainers) ? object.spec.initContainers : [])"
    " + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : []))"
)
_OPT = re.compile(r"opt\(([A-Za-z_][\w.]*),\s*([^()]*?)\)")
_VERSIONED = re.compile(r"\{\{(since|until) v1\.(\d+):(.*?)\}\}", re.DOTALL)


def minor_of(version: str) -> int:
    """`v1.32` -> 32; "latest" -> the newest version the library knows."""
    if version == LATEST:
        version = PSS_VERSIONS[-1]
    if version not in PSS_VERSIONS:
        raise ValueError(f"unknown Pod Security Standards version {version!r}")
    return int(version.removeprefix("v1."))


def _opt(match: re.Match[str]) -> str:
    path, default = match.group(1), match.group(2).strip()
    parts = path.split(".")
    checks = [f"has({'.'.join(parts[: i + 1])})" for i in range(1, len(parts))]
    return f"(({' && '.join(checks)}) ? {path} : {default})"


def expand(expression: str, version: str = LATEST) -> str:
    """Plain CEL for a library expression read at a standard version."""
    minor = minor_of(version)

    def versioned(match: re.Match[str]) -> str:
        since = int(match.group(2))
        wanted = minor >= since if match.group(1) == "since" else minor < since
        return match.group(3) if wanted else ""

    text = _VERSIONED.sub(versioned, expression)
    return _OPT.sub(_opt, text.replace("$containers", CONTAINERS)).strip()


def applies_at(policy: dict[str, Any], version: str) -> bool:
    """Whether the standard has this policy's control at `version`."""
    since = policy.get("since")
    return since is None or minor_of(version) >= int(str(since).removeprefix("v1."))


@cache
def _raw() -> tuple[dict[str, Any], ...]:
    policies: list[dict[str, Any]] = []
    for name in FILES:
        policies.extend(yaml.safe_load((HERE / name).read_text()))
    return tuple(policies)


@cache
def library(version: str = LATEST) -> tuple[dict[str, Any], ...]:
    """Every bundled policy read at a standard version, macros expanded, in file order.
    A control the standard does not have yet at `version` gets a rule that accepts all."""
    policies: list[dict[str, Any]] = []
    for raw in _raw():
        policy = copy.deepcopy(raw)
        applies = applies_at(policy, version)
        for rule in policy.get("rules", []):
            if not applies:
                rule["expression"] = "true"
                rule["message"] = f"Not a control of the Pod Security Standards {version}."
            elif rule.get("expression"):
                rule["expression"] = expand(rule["expression"], version)
        policies.append(policy)
    return tuple(policies)


def is_versioned(policy: dict[str, Any]) -> bool:
    """Whether a library policy implements a Pod Security Standards control."""
    return any(str(s).startswith("pss-") for s in policy.get("standards", []))


def library_entry(name: str, version: str = LATEST) -> dict[str, Any] | None:
    """The bundled policy named `name` read at `version`, or None."""
    return next((p for p in library(version) if p["name"] == name), None)
