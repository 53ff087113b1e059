"""YAML alias bombs and deep nesting are refused by the shared loader (kube/safeyaml.py)
before anything is built; every place users send YAML: tests/security/test_yaml_bombs.py."""

from __future__ import annotations

import pytest

from kube.safeyaml import MAX_DEPTH, YAMLInputError, load_all, load_one


def bomb(levels: int, indent: str = "") -> str:
    """`levels` anchors, each a list of ten aliases of the one before: the last one names
    10**levels strings. Written out (str(), JSON, an error message) it is
    10**levels * ~7 bytes; the YAML is a few hundred bytes."""
    lines = [f'{indent}l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"{indent}l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_the_bomb_is_small_and_would_expand_to_megabytes() -> None:
    # The expectation of the tests below, worked out: 5 levels name 10**5 strings.
    assert len(bomb(5)) < 600


def test_aliases_and_deep_nesting_are_refused_by_the_shared_loader() -> None:
    with pytest.raises(YAMLInputError, match="aliases"):
        load_one(bomb(2), max_bytes=10_000)
    with pytest.raises(YAMLInputError, match="aliases"):
        load_all("a: 1\n---\n" + bomb(2), max_bytes=10_000)
    with pytest.raises(YAMLInputError, match="nested deeper"):
        load_one("[" * 10_000 + "]" * 10_000, max_bytes=100_000)
    # a control character or a lone surrogate is refused as such, not a server error
    with pytest.raises(YAMLInputError, match="character #x0090 at position 3"):
        load_all("a: \x90", max_bytes=100)
    with pytest.raises(YAMLInputError, match="UTF-8"):
        load_one("a: \ud800", max_bytes=100)
    with pytest.raises(YAMLInputError, match="larger than"):
        load_one("a: " + "x" * 2000, max_bytes=1000)
    # and what Kubernetes objects do use still loads: anchors' absence changes nothing
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_one(nested, max_bytes=10_000) is not None
    assert load_all("a: 1\n---\nb: [2, {c: 3}]\n", max_bytes=100) == [
        {"a": 1},
        {"b": [2, {"c": 3}]},
    ]
