"""Which parts of its variable a CEL expression can read, and a copy of a value cut down
to those parts.

Why: the native engine copies every value an expression selects (`object.spec` copies
the whole spec), so a rule's cost grows with the size of everything it walks through,
and converting a whole Pod into the engine costs more than most rules. Evaluating over a
copy that holds only what the expression can read gives the same verdict for a fraction
of the work.

`reads(tree, root)` walks cel-python's parse tree and returns a `Shape`: the field paths
read from `root` (a macro's variable stands for `<range>[*]`), or None for "the whole
value". A value used in any way but a further constant member selection, a constant
index, `has()`, `size()` or a macro's range (compared, passed to a function, tested
with `in`, indexed by a variable, returned...) is read whole. Anything the walk does not
fully understand makes it answer None: correctness first, pruning second.

`prune(value, shape)` keeps the value's structure where the shape reads it: absent fields
stay absent (so `has()` and "no such key" errors are unchanged), lists keep every element
in order (each cut down by `[*]`), a map the shape iterates keeps every key, and a value
whose type does not fit the shape (a field selected on a list or a string) is kept as is,
so the engine fails on it exactly as it would on the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lark import Token, Tree

# Comprehension macros with one variable: name -> (argument count, result is the range).
# `filter` yields a sub-list of the range's elements (or keys); the others yield new
# values (booleans, mapped results) that carry nothing of the range by reference.
_MACROS: dict[str, tuple[tuple[int, ...], bool]] = {
    "all": ((2,), False),
    "exists": ((2,), False),
    "exists_one": ((2,), False),
    "existsOne": ((2,), False),  # the native engine's spelling of exists_one
    "filter": ((2,), True),
    "map": ((2, 3), False),
}
# Nodes that only wrap one child when no operator is present.
_PASS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member", "primary", "paren_expr"}
)
_SIMPLE_STRING = re.compile(r"""^[rR]?(?:'([^'\\\n]*)'|"([^"\\\n]*)")$""")

Path = tuple[Any, ...]  # field names (str) and STAR


class _Star:
    """Every element of a list, every key of a map (a macro's range, `size()`, `[0]`)."""

    def __repr__(self) -> str:
        return "*"


STAR = _Star()


class Whole(Exception):
    """The analysis met something it does not fully understand: read the whole value."""


class Shape:
    """What to keep of a value. `whole`: all of it. Otherwise the `fields` a map keeps
    (each with its own shape) and, if `star` is set, every element of a list or key of
    a map, cut down to `star` (a field also named in `fields` gets both, merged). A shape
    with neither is presence only: the value's content is never read.

    Equal shapes are equal and hash alike, so the same conversion serves every rule that
    reads the same paths."""

    __slots__ = ("_hash", "_key", "_pruner", "fields", "star", "whole")

    def __init__(
        self,
        whole: bool = False,
        fields: dict[str, Shape] | None = None,
        star: Shape | None = None,
    ) -> None:
        self.whole = whole
        self.fields = {} if whole else dict(sorted((fields or {}).items()))
        self.star = None if whole else star
        self._key: tuple[Any, ...] = (
            whole,
            tuple((name, shape._key) for name, shape in self.fields.items()),
            None if self.star is None else self.star._key,
        )
        self._hash = hash(self._key)  # tuples do not cache theirs: looked up per evaluation
        self._pruner: Callable[[Any], Any] | None = None

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Shape) and other._key == self._key)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Shape({', '.join(sorted(self.paths()))})"

    def paths(self, prefix: str = "") -> list[str]:
        """The shape as readable paths: `a.b` (whole), `a.b?` (presence only)."""
        if self.whole:
            return [prefix or "<whole>"]
        if not self.fields and self.star is None:
            return [f"{prefix}?"] if prefix else []  # nothing read at all
        found: list[str] = []
        for name, shape in self.fields.items():
            found += shape.paths(f"{prefix}.{name}" if prefix else name)
        if self.star is not None:
            found += self.star.paths(f"{prefix}[*]")
        return found


class _Node:
    """A mutable shape while the walk records reads."""

    __slots__ = ("children", "whole")

    def __init__(self) -> None:
        self.whole = False
        self.children: dict[Any, _Node] = {}

    def at(self, path: Path) -> _Node:
        node = self
        for step in path:
            if node.whole:
                return node  # everything below is kept already
            node = node.children.setdefault(step, _Node())
        return node

    def merge(self, other: _Node) -> None:
        if other.whole:
            self.whole = True
        for step, child in other.children.items():
            self.children.setdefault(step, _Node()).merge(child)

    def freeze(self) -> Shape:
        if self.whole:
            return Shape(whole=True)
        star = self.children.get(STAR)
        fields: dict[str, Shape] = {}
        for step, child in self.children.items():
            if step is STAR:
                continue
            if star is not None:  # on a map, this key is also one the macro visits
                merged = _Node()
                merged.merge(child)
                merged.merge(star)
                child = merged
            fields[step] = child.freeze()
        return Shape(fields=fields, star=None if star is None else star.freeze())


def _thaw(shape: Shape) -> _Node:
    node = _Node()
    node.whole = shape.whole
    for name, sub in shape.fields.items():
        node.children[name] = _thaw(sub)
    if shape.star is not None:
        node.children[STAR] = _thaw(shape.star)
    return node


def union(shapes: list[Shape]) -> Shape:
    """A shape keeping everything any of `shapes` keeps: what each of them keeps of a
    value is then a function of what the union keeps (`prune(prune(v, u), s)` equals
    `prune(v, s)`), so values equal under the union are equal under each."""
    node = _Node()
    for shape in shapes:
        node.merge(_thaw(shape))
    found = node.freeze()
    # One object per union: verdict keys holding it then compare by identity, not by
    # walking two equal shapes (each batch works its unions out anew).
    if len(_unions) > 10000:
        _unions.clear()
    return _unions.setdefault(found, found)


_unions: dict[Shape, Shape] = {}


Values = frozenset[Path]  # the root paths a sub-expression's value may be (empty: none)
_NONE: Values = frozenset()


class _Walk:
    def __init__(self, root: str) -> None:
        self.root = root
        self.reads = _Node()

    # --- recording -----------------------------------------------------------------

    def whole(self, values: Values) -> None:
        for path in values:
            self.reads.at(path).whole = True

    def touch(self, values: Values, step: Any) -> Values:
        """Record `step` read below each path (presence at least) and return the paths."""
        extended = frozenset((*path, step) for path in values)
        for path in extended:
            self.reads.at(path)
        return extended

    # --- the walk --------------------------------------------------------------------

    def eval(self, node: Any, scope: dict[str, Values]) -> Values:
        if not isinstance(node, Tree):
            raise Whole(f"unexpected token {node!r}")
        kind, children = node.data, node.children
        if kind in _PASS and len(children) == 1:
            return self.eval(children[0], scope)
        if kind == "expr" and len(children) == 3:  # c ? a : b
            self.whole(self.eval(children[0], scope))
            return self.eval(children[1], scope) | self.eval(children[2], scope)
        if kind in ("conditionalor", "conditionaland") and len(children) == 2:
            return self._binary(children[0], children[1], scope, union=False)
        if kind in ("relation", "addition", "multiplication") and len(children) == 2:
            operator = children[0]
            if not isinstance(operator, Tree) or len(operator.children) != 1:
                raise Whole("unexpected operator")
            # List `+` keeps the operands' elements: the result is made of them.
            union = operator.data == "addition_add"
            return self._binary(operator.children[0], children[1], scope, union=union)
        if kind == "unary" and len(children) == 2:
            self.whole(self.eval(children[1], scope))
            return _NONE
        if kind == "literal":
            return _NONE
        if kind == "ident":
            return self._ident(_name(children[0]), scope)
        if kind == "member_dot":
            return self.touch(self.eval(children[0], scope), _name(children[1]))
        if kind == "member_index":
            return self._index(children[0], children[1], scope)
        if kind == "member_dot_arg":
            return self._method(children[0], _name(children[1]), _args(children[2:]), scope)
        if kind == "ident_arg":
            return self._function(_name(children[0]), _args(children[1:]), scope)
        if kind == "list_lit":
            for item in _args(children):
                self.whole(self.eval(item, scope))
            return _NONE
        if kind == "map_lit":
            for item in _args(children, "mapinits"):
                self.whole(self.eval(item, scope))
            return _NONE
        # member_object (messages), dot_ident / dot_ident_arg (root-scoped names), or a
        # construct this walk does not know.
        raise Whole(f"unsupported construct {kind}")

    def _binary(self, left: Any, right: Any, scope: dict[str, Values], *, union: bool) -> Values:
        found = self.eval(left, scope), self.eval(right, scope)
        if union:
            return found[0] | found[1]
        self.whole(found[0] | found[1])
        return _NONE

    def _ident(self, name: str, scope: dict[str, Values]) -> Values:
        if name in scope:
            return scope[name]
        if name == self.root:
            return frozenset({()})
        return _NONE  # another variable, a type name: carries nothing of the root

    def _index(self, target: Any, index: Any, scope: dict[str, Values]) -> Values:
        values = self.eval(target, scope)
        literal = _literal(index)
        if literal is None:  # a computed index may pick anything: the target is read whole
            self.whole(values | self.eval(index, scope))
            return _NONE
        kind, text = literal
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            match = _SIMPLE_STRING.match(text)
            if match is None:  # escapes: not worth decoding here
                self.whole(values)
                return _NONE
            key = match.group(1) if match.group(1) is not None else match.group(2)
            return self.touch(values, key)
        # A number (or anything else) picks an element of a list: keep all of them.
        return self.touch(values, STAR)

    def _method(self, target: Any, name: str, args: list[Any], scope: dict[str, Values]) -> Values:
        if name in _MACROS:
            counts, keeps_range = _MACROS[name]
            if len(args) not in counts:
                raise Whole(f"{name} with {len(args)} arguments")
            variable = _bare_ident(args[0])
            if variable is None or variable == self.root:
                raise Whole(f"{name} binds something other than a fresh name")
            values = self.eval(target, scope)
            inner = {**scope, variable: self.touch(values, STAR)}
            for arg in args[1:]:
                self.whole(self.eval(arg, inner))
            return values if keeps_range else _NONE
        if name == "size" and not args:
            self.touch(self.eval(target, scope), STAR)
            return _NONE
        self._unknown_call(args, scope)
        self.whole(self.eval(target, scope))
        for arg in args:
            self.whole(self.eval(arg, scope))
        return _NONE

    def _function(self, name: str, args: list[Any], scope: dict[str, Values]) -> Values:
        if name == "has":
            if len(args) != 1:
                raise Whole("has() takes one selection")
            selection = _unwrap(args[0])
            if selection.data != "member_dot":
                raise Whole("has() of something other than a field")
            values = self.eval(selection.children[0], scope)
            self.touch(values, _name(selection.children[1]))
            return _NONE
        if name == "size" and len(args) == 1:
            self.touch(self.eval(args[0], scope), STAR)
            return _NONE
        self._unknown_call(args, scope)
        for arg in args:
            self.whole(self.eval(arg, scope))
        return _NONE

    def _unknown_call(self, args: list[Any], scope: dict[str, Values]) -> None:
        """A bare unknown name as an argument may be the variable of a macro this walk
        does not know (cel.bind, sortBy...): give up rather than guess its scope."""
        for arg in args:
            name = _bare_ident(arg)
            if name is not None and name not in scope and name != self.root:
                raise Whole(f"{name!r} may be a macro variable")


def _name(token: Any) -> str:
    if not isinstance(token, Token):
        raise Whole(f"expected a name, found {token!r}")
    return str(token)


def _args(children: list[Any], kind: str = "exprlist") -> list[Any]:
    """The expressions of an optional exprlist/mapinits child."""
    found: list[Any] = []
    for child in children:
        if child is None:
            continue
        if not isinstance(child, Tree) or child.data != kind:
            raise Whole(f"expected {kind}")
        found += child.children
    return found


def _unwrap(node: Any) -> Tree[Any]:
    """The innermost node under single-child wrappers (`expr` > ... > `member`)."""
    while isinstance(node, Tree) and node.data in _PASS and len(node.children) == 1:
        node = node.children[0]
    if not isinstance(node, Tree):
        raise Whole(f"unexpected token {node!r}")
    return node


def _bare_ident(node: Any) -> str | None:
    inner = _unwrap(node)
    if inner.data == "ident":
        return _name(inner.children[0])
    return None


def _literal(node: Any) -> tuple[str, str] | None:
    """(token type, text) if `node` is a literal constant."""
    inner = _unwrap(node)
    if inner.data != "literal" or len(inner.children) != 1:
        return None
    token = inner.children[0]
    if not isinstance(token, Token):
        return None
    return str(token.type), str(token)


def reads(tree: Any, root: str) -> Shape | None:
    """What an expression (cel-python's parse tree) reads of the variable `root`; None
    when it may read all of it or the walk cannot tell."""
    walk = _Walk(root)
    try:
        walk.whole(walk.eval(tree, {}))  # the expression's own value is read whole
    except (Whole, RecursionError):
        return None
    shape = walk.reads.freeze()
    return None if shape.whole else shape


def prune(value: Any, shape: Shape | None) -> Any:
    """`value` cut down to `shape` (new containers; kept leaves are shared)."""
    if shape is None or shape.whole:
        return value
    pruner = shape._pruner
    if pruner is None:
        pruner = shape._pruner = _compile(shape)
    return pruner(value)


def prune_reference(value: Any, shape: Shape | None) -> Any:
    """What `prune` does, written plainly (tests compare the compiled pruner with it)."""
    if shape is None or shape.whole:
        return value
    if isinstance(value, dict):
        if shape.star is None:
            return {
                name: prune_reference(value[name], sub)
                for name, sub in shape.fields.items()
                if name in value
            }
        fields, star = shape.fields, shape.star
        return {key: prune_reference(item, fields.get(key, star)) for key, item in value.items()}
    if isinstance(value, list):
        if shape.fields:  # a field of a list: the engine fails on it, as on the original
            return value
        if shape.star is None:
            return []
        return [prune_reference(item, shape.star) for item in value]
    return value  # scalars are kept whole


def _compile(shape: Shape) -> Callable[[Any], Any]:
    """A pruner for a shape that is not whole: one closure per level, with the levels
    below known in advance (None: kept whole, no call). A sweep prunes every object once
    per shape, so this is most of the cost of sharing verdicts."""
    fields = [(name, None if sub.whole else _compile(sub)) for name, sub in shape.fields.items()]
    has_fields = bool(fields)
    if shape.star is None:

        def cut_fields(value: Any) -> Any:
            if isinstance(value, dict):
                out = {}
                for name, below in fields:
                    if name in value:
                        item = value[name]
                        out[name] = item if below is None else below(item)
                return out
            if isinstance(value, list):
                return value if has_fields else []
            return value

        return cut_fields
    star = None if shape.star.whole else _compile(shape.star)
    named = dict(fields)

    def cut_all(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                below = named.get(key, star)
                out[key] = item if below is None else below(item)
            return out
        if isinstance(value, list):
            if has_fields:
                return value
            if star is None:
                return list(value)
            return [star(item) for item in value]
        return value

    return cut_all
