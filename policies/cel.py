"""CEL expressions: parsed and validated by cel-python, evaluated by the native CEL
engine (cel-rust, `common-expression-language`) with cel-python behind it.

A syntax error becomes a `ValidationError` naming the line, column and reason, so the API,
the editor and the library loader all reject a bad expression the same way. An
evaluation failure for one object is a `CelEvaluationError` that the evaluator records
against that object and goes on.

Why two engines: cel-python interprets the parse tree (about 1 ms per object and rule,
most of a sweep's CPU); the native engine runs a compiled program over an object
converted once for every rule (about 20 us). Whenever the native engine cannot compile an
expression, fails on an object or returns something other than a boolean, cel-python
evaluates it, so its verdict and its error messages stay what they were.

The native engine copies every value an expression selects, so it is given a copy of the
object cut down to the paths the expression can read (`celpaths`): same verdict, a
fraction of the cost. cel-python always sees the whole object.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import cel as native
import celpy
import orjson
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from django.core.exceptions import ValidationError

from policies import celcost, celpaths

# Lark's terminal names, said the way a person would read them.
_TERMINALS = {
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "IDENT": "a name",
    "STRING_LIT": "a string",
    "INT_LIT": "a number",
    "$END": "the end of the expression",
}
_TOKEN = re.compile(r"Token\('([^']*)', '((?:[^'\\]|\\.)*)'\)")
_EXPECTED = re.compile(r"^\s*\* (\S+)\s*$", re.MULTILINE)

_env = celpy.Environment()
_lock = threading.Lock()


class CelEvaluationError(Exception):
    """The expression could not be evaluated for one object (missing field, bad type)."""


def _reason(cause: BaseException | None, source: str) -> str:
    if cause is None:
        return "syntax error"
    text = str(cause)
    token = _TOKEN.search(text)
    if "No terminal matches" in text:
        reason = "unexpected character"
    elif token:
        name, value = token.groups()
        reason = "unexpected end of expression" if name == "$END" else f"unexpected {value!r}"
    else:
        reason = "syntax error"
    expected = sorted({_TERMINALS[n] for n in _EXPECTED.findall(text) if n in _TERMINALS})
    if expected and len(expected) <= 4:
        reason += f" (expected {' or '.join(expected)})"
    return reason


def _position(error: CELParseError, source: str) -> tuple[int, int]:
    """(line, column), 1-based. Lark leaves both unset for a premature end: then the
    position is just past the last character."""
    if error.line is not None and error.column is not None:
        return int(error.line), int(error.column)
    lines = source.split("\n")
    return len(lines), len(lines[-1]) + 1


def _parse(source: str) -> Any:
    """cel-python's parse tree; ValidationError on a syntax error or past a limit."""
    if not source.strip():
        raise ValidationError("The CEL expression is empty.")
    celcost.check_source(source)  # before parsing: the parse itself costs
    try:
        with _lock:  # the Lark parser is shared and not thread-safe
            tree = _env.compile(source)
    except CELParseError as error:
        line, column = _position(error, source)
        reason = _reason(error.__cause__ or error.__context__, source)
        raise ValidationError(
            f"Invalid CEL at line {line}, column {column}: {reason}.", code="cel"
        ) from None
    celcost.check_tree(tree)
    return tree


@lru_cache(maxsize=2048)
def compile_expression(source: str) -> Any:
    """A runnable program for `source`; raises ValidationError on a syntax error or an
    expression past the size, nesting or cost limits (`celcost`)."""
    tree = _parse(source)
    with _lock:
        return _env.program(tree)


def validate_expression(source: str) -> None:
    compile_expression(source)


@lru_cache(maxsize=2048)
def _cost_tree(source: str) -> Any:
    """A parse tree of its own for cost estimates (the program keeps the other)."""
    return _parse(source)


@lru_cache(maxsize=8192)
def cost(source: str, bucket: int) -> int:
    """`source`'s estimated cost over an object whose largest list or map has `bucket`
    items (a power of two)."""
    return celcost.estimate(_cost_tree(source), bucket)


_budget: ContextVar[list[int] | None] = ContextVar("cel_budget", default=None)


@contextmanager
def budget(units: int) -> Iterator[None]:
    """Bound every evaluation inside the block, together, to `units` of estimated cost:
    past it each further evaluation fails (an error recorded against its object) instead
    of running. Web requests that evaluate user CEL run inside one."""
    token = _budget.set([units])
    try:
        yield
    finally:
        _budget.reset(token)


def _charge(source: str, activation: Activation, *, python: bool) -> None:
    """Refuse (CelEvaluationError) an evaluation too costly for this object, or past the
    block's budget; else charge it to the budget."""
    units = cost(source, celcost.size_bucket(activation.largest(reads(source, activation.name))))
    limit = celcost.PYTHON_CALL_LIMIT if python else celcost.PER_CALL_LIMIT
    if units > limit:
        raise CelEvaluationError(
            f"the expression's estimated cost on this object ({units:,}) exceeds the "
            f"limit of {limit:,}"
        )
    left = _budget.get()
    if left is not None:
        units *= celcost.PYTHON_WEIGHT if python else 1
        if units > left[0]:
            raise CelEvaluationError(
                "this request's CEL cost budget is spent: evaluate the policy in the "
                "background (the scheduled sweep) to judge the rest"
            )
        left[0] -= units


@lru_cache(maxsize=2048)
def _native_program(source: str) -> Any:
    """The native engine's program for `source`, or None if it cannot compile it."""
    try:
        return native.compile(source)
    except Exception:  # an extension it lacks: cel-python evaluates this expression
        return None


@lru_cache(maxsize=4096)
def reads(source: str, name: str) -> celpaths.Shape | None:
    """What `source` can read of the variable `name` (None: all of it). Parsed again
    here so the walk has a tree of its own (cel-python's program keeps the other)."""
    compile_expression(source)  # a syntax error is raised as ValidationError
    with _lock:
        tree = _env.compile(source)
    return celpaths.reads(tree, name)


class Verdicts:
    """Verdicts per (expression, variable, cut-down value), shared by every snapshot the
    process judges. A verdict is a pure function of the program and the value it sees, so
    clusters running the same workloads (what a fleet manager places) judge each shape of
    them once; names, uids and timestamps are cut away unless an expression reads them.
    Bounded: when it holds `max_bytes` of keys it starts again."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._found: dict[tuple[str, str, celpaths.Shape, bytes], bool] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, celpaths.Shape, bytes]) -> bool | None:
        return self._found.get(key)

    def put(self, key: tuple[str, str, celpaths.Shape, bytes], verdict: bool) -> None:
        size = len(key[3]) + len(key[0]) + 100
        with self._lock:
            if self._bytes + size > self.max_bytes:
                self._found = {}
                self._bytes = 0
            self._found[key] = verdict
            self._bytes += size

    def __len__(self) -> int:
        return len(self._found)

    def clear(self) -> None:
        with self._lock:
            self._found = {}
            self._bytes = 0


VERDICTS = Verdicts()


class Memo:
    """Conversions shared by the activations of one snapshot (one cluster): objects whose
    cut-down values are equal (a Deployment's pod template, its ReplicaSet's and its
    Pods' for a rule that reads only the containers) are converted once. Verdicts are
    shared further, by every snapshot (`VERDICTS`)."""

    def __init__(self, verdicts: Verdicts | None = None) -> None:
        self.contexts: dict[tuple[celpaths.Shape, bytes], Any] = {}
        self.verdicts = VERDICTS if verdicts is None else verdicts


_UNSHAREABLE = b""


class Activation:
    """One value (an object, the cluster) bound to a name, converted at most once per
    engine and per set of paths however many expressions run over it: rules reading the
    same paths share one cut-down conversion."""

    def __init__(self, name: str, value: Any, memo: Memo | None = None) -> None:
        self.name = name
        self.value = value
        self.memo = memo
        self._native: dict[celpaths.Shape | None, Any] = {}
        self._cut: dict[celpaths.Shape, tuple[Any, bytes]] = {}
        self._python: dict[str, Any] | None = None
        self._largest: dict[celpaths.Shape | None, int] = {}

    def largest(self, shape: celpaths.Shape | None) -> int:
        """Items of the largest list or map in what an expression reading `shape` sees
        (all of the value for None): what bounds its comprehensions."""
        found = self._largest.get(shape)
        if found is None:
            value = self.value if shape is None else self.cut(shape)[0]
            found = self._largest[shape] = celcost.largest_collection(value)
        return found

    def cut(self, shape: celpaths.Shape) -> tuple[Any, bytes]:
        """The value cut down to `shape` and its canonical JSON (empty if it has none:
        then it is not shared)."""
        found = self._cut.get(shape)
        if found is None:
            pruned = celpaths.prune(self.value, shape)
            try:
                canonical = orjson.dumps(pruned, option=orjson.OPT_SORT_KEYS)
            except (TypeError, ValueError):  # not plain JSON (or an integer past 64 bits)
                canonical = _UNSHAREABLE
            found = self._cut[shape] = (pruned, canonical)
        return found

    def native(self, shape: celpaths.Shape | None = None) -> Any:
        """The native engine's context over the value cut down to `shape` (all of it by
        default); None if the value does not convert."""
        try:
            return self._native[shape]
        except KeyError:
            pass
        key = None
        if shape is None:
            pruned = self.value
        else:
            pruned, canonical = self.cut(shape)
            if self.memo is not None and canonical:
                key = (shape, canonical)
                if key in self.memo.contexts:
                    shared = self._native[shape] = self.memo.contexts[key]
                    return shared
        context: Any = native.Context()
        try:
            context.add_variable(self.name, pruned)
        except Exception:  # not plain JSON: cel-python converts it
            context = None
        self._native[shape] = context
        if key is not None and self.memo is not None:
            self.memo.contexts[key] = context
        return context

    def python(self) -> dict[str, Any]:
        if self._python is None:
            self._python = {self.name: celpy.json_to_cel(self.value)}
        return self._python


def evaluate(source: str, activation: Activation, share: celpaths.Shape | None = None) -> bool:
    """Run `source` over `activation`. True means the object passes. Raises
    CelEvaluationError when the expression fails or returns anything but a boolean.

    `share`, a shape keeping at least what `source` reads, keys the shared verdict by
    the value cut down to it instead of to the expression's own reads: rules judging the
    same objects then cut each object once (`engine.share`)."""
    try:
        program = compile_expression(source)  # validates; cel-python's own program
    except ValidationError as error:  # stored before the limits: fails, never runs
        raise CelEvaluationError(error.messages[0]) from None
    fast = _native_program(source)
    if fast is not None:
        shape = reads(source, activation.name)
        memo = activation.memo
        key = None
        if memo is not None and shape is not None:
            keyed_by = shape if share is None else share
            canonical = activation.cut(keyed_by)[1]
            if canonical:
                key = (source, activation.name, keyed_by, canonical)
                verdict = memo.verdicts.get(key)
                if verdict is not None:
                    return verdict
        _charge(source, activation, python=False)
        context = activation.native(shape)
        if context is not None:
            try:
                result = fast.execute(context)
            except Exception:  # cel-python says why, as it always has
                result = None
            if isinstance(result, bool):
                if key is not None and memo is not None:
                    memo.verdicts.put(key, result)
                return result
    _charge(source, activation, python=True)
    try:
        result = program.evaluate(activation.python())
    except CELEvalError as error:
        raise CelEvaluationError(_eval_reason(error)) from None
    except Exception as error:  # the library's own bugs must not stop a sweep
        raise CelEvaluationError(f"{type(error).__name__}: {error}") from None
    if isinstance(result, CELEvalError):
        raise CelEvaluationError(_eval_reason(result))
    if not isinstance(result, celtypes.BoolType | bool):
        raise CelEvaluationError(f"the expression returned {type(result).__name__}, not a boolean")
    return bool(result)


def _eval_reason(error: CELEvalError) -> str:
    args = error.args
    return str(args[0]) if args else "evaluation failed"
