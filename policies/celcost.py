"""Size, nesting and cost limits for user CEL, in the manner of Kubernetes' CEL.

Kubernetes refuses a CEL rule whose *estimated* cost is too high when it is written and
stops one whose *actual* cost passes a per-call limit while it runs. Neither engine here
counts cost as it runs, so Keelson estimates it from the parse tree, twice:

- on save (`check_expression`), with every list or map the expression does not spell out
  assumed to hold `ASSUMED_SIZE` items: a rule that would be too costly on an ordinary
  object is refused with a 400 naming the limit;
- before each evaluation (`cost`), with those lists and maps as large as the largest one in
  the object judged: a rule too costly for that object fails on it (an error recorded
  against the object, as Kubernetes reports "cost limit exceeded") and is not run.

The estimate counts one unit per operation (call, operator, selection, literal); a
comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) costs its range plus, per
item, its body. The walk is iterative: a deep tree cannot exhaust the stack here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from lark import Token, Tree

# Limits. Kubernetes allows 1,000,000 cost units per call (PerCallLimit) and 10,000,000
# per admission request (RuntimeCELCostBudget); Keelson's units are coarser (an operation,
# not a type-checked step) and its fallback interpreter far slower, hence the second limit.
MAX_LENGTH = 4096  # characters
MAX_DEPTH = 250  # levels of the parse tree: operators, parentheses, calls, selections
MAX_BRACKETS = 24  # nested (), [] and {}, checked before parsing (the parser is slow on them)
PER_CALL_LIMIT = 1_000_000  # one expression on one object, native engine
PYTHON_CALL_LIMIT = 5_000  # the same through cel-python (about a thousand times slower)
ASSUMED_SIZE = 100  # items of a list or map not spelled out, when checking on save
# All evaluations of one web request together (about half a second of the native engine);
# a cel-python unit counts as PYTHON_WEIGHT native ones (measured ratio: over a thousand).
REQUEST_BUDGET = 5_000_000
PYTHON_WEIGHT = 1000
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_SIZED_RESULTS = frozenset({"map", "filter"})


@dataclass(frozen=True)
class _Node:
    cost: int
    size: int | None  # items, when the node is a collection of known size


def _depth(tree: Tree[Any]) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest


def _combine(node: Tree[Any], done: dict[int, _Node], unknown: int) -> _Node:
    kids = [done[id(c)] if isinstance(c, Tree) else None for c in node.children]
    trees = [(c, k) for c, k in zip(node.children, kids, strict=True) if k is not None]
    if node.data == "member_dot_arg" and len(node.children) == 3:
        name = node.children[1]
        if isinstance(name, Token) and str(name) in MACROS:
            target, args = kids[0], kids[2]
            assert target is not None and args is not None
            items = target.size if target.size is not None else unknown
            size = items if str(name) in _SIZED_RESULTS else None
            return _Node(target.cost + max(items, 1) * (args.cost + 1), size)
    if node.data == "list_lit":
        exprs = node.children[0].children if node.children else []
        return _Node(1 + sum(k.cost for _, k in trees), len(exprs))
    if node.data == "map_lit":
        inits = node.children[0].children if node.children else []
        return _Node(1 + sum(k.cost for _, k in trees), len(inits) // 2)
    total = sum(k.cost for _, k in trees)
    if len(trees) == 1 and len(node.children) == 1:
        return _Node(total, trees[0][1].size)  # a wrapper level: no work of its own
    return _Node(total + 1, None)


def estimate(tree: Tree[Any], unknown: int) -> int:
    """The tree's cost with unspelled collections of `unknown` items (post-order, no
    recursion)."""
    done: dict[int, _Node] = {}
    stack: list[tuple[Tree[Any], bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            done[id(node)] = _combine(node, done, unknown)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in node.children if isinstance(child, Tree))
    return done[id(tree)].cost


def _bracket_depth(source: str) -> int:
    """The deepest nesting of brackets outside string literals (a linear scan)."""
    depth = deepest = 0
    quote, escaped = "", False
    for char in source:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def check_source(source: str) -> None:
    """Refuse (ValidationError, code "cel_limit") an expression too long or too deeply
    bracketed to parse."""
    if len(source) > MAX_LENGTH:
        raise ValidationError(
            f"The CEL expression is {len(source)} characters long; the limit is {MAX_LENGTH}.",
            code="cel_limit",
        )
    if _bracket_depth(source) > MAX_BRACKETS:
        raise ValidationError(
            f"The CEL expression nests brackets more than {MAX_BRACKETS} levels deep.",
            code="cel_limit",
        )


def check_tree(tree: Tree[Any]) -> None:
    """Refuse (ValidationError, code "cel_limit") an expression too deeply nested or too
    costly on an ordinary object."""
    if _depth(tree) > MAX_DEPTH:
        raise ValidationError(
            f"The CEL expression nests more than {MAX_DEPTH} levels deep.", code="cel_limit"
        )
    cost = estimate(tree, ASSUMED_SIZE)
    if cost > PER_CALL_LIMIT:
        raise ValidationError(
            f"The CEL expression's estimated cost ({cost:,} with lists of {ASSUMED_SIZE} "
            f"items) exceeds the limit of {PER_CALL_LIMIT:,}: nest fewer comprehensions "
            "(all, exists, map, filter) or iterate over fewer items.",
            code="cel_limit",
        )


def largest_collection(value: Any) -> int:
    """The item count of the largest list or map inside `value` (iterative)."""
    largest, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            largest = max(largest, len(item))
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            largest = max(largest, len(item))
            stack.extend(v for v in item if isinstance(v, dict | list))
    return largest


def size_bucket(items: int) -> int:
    """Round up to a power of two: estimates are cached per (expression, bucket)."""
    return 1 << max(items - 1, 0).bit_length()
