"""The one loader for YAML that users send: kubeconfigs, application manifests, policy rules.

YAML aliases let a few hundred bytes name the same node billions of times (the
"billion laughs"): expanding them, storing the result or echoing it in an error held a
web process for seconds and hundreds of megabytes. Kubernetes objects and kubeconfigs
never need them, so an alias is refused outright, before anything is built; so is nesting
deeper than MAX_DEPTH (the composer recurses once per level) and input over the caller's
size limit. Errors carry a position and a short reason, never the input.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.reader import ReaderError

MAX_DEPTH = 100
# An error message built from user input (a name, a value) is cut to this many characters.
MAX_MESSAGE = 200


class YAMLInputError(ValueError):
    """The text is not YAML Keelson accepts. The message is short, quotes no input, and
    is a predicate for the caller's subject: "not valid YAML at line 3, column 5: ...",
    "larger than 1,000,000 bytes" (`f"The rules are {error}."`)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader (plain data only) that refuses aliases and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, AliasEvent):
            raise ComposerError(
                None,
                None,
                "aliases (*name) are not accepted: write the value out",
                mark,
            )
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


def _error(error: yaml.YAMLError) -> YAMLInputError:
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = str(getattr(error, "problem", None) or "invalid YAML")
    if isinstance(error, ReaderError) and isinstance(error.character, int):
        problem = (
            f"character #x{error.character:04x} at position {error.position} is not allowed "
            "(control and special characters)"
        )
    return YAMLInputError(f"not valid YAML{where}: {shorten(problem)}")


def _loader(text: str, max_bytes: int) -> _Loader:
    """A loader for `text` if its size allows; the reader refuses control characters (and
    lone surrogates) as it starts, so that is a YAMLInputError too."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise YAMLInputError("not valid UTF-8 text") from None
    if size > max_bytes:
        raise YAMLInputError(f"larger than {max_bytes:,} bytes")
    try:
        return _Loader(text)
    except yaml.YAMLError as error:
        raise _error(error) from None


def load_one(text: str, *, max_bytes: int) -> Any:
    """The single document in `text` (None if empty)."""
    loader = _loader(text, max_bytes)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise _error(error) from None
    finally:
        loader.dispose()


def load_all(text: str, *, max_bytes: int) -> list[Any]:
    """Every document in `text` (`---` separated)."""
    loader = _loader(text, max_bytes)
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
        return documents
    except yaml.YAMLError as error:
        raise _error(error) from None
    finally:
        loader.dispose()


def load_all_with_lines(text: str, *, max_bytes: int) -> list[tuple[int, Any]]:
    """Every document in `text` with the line (1-based) where it starts."""
    loader = _loader(text, max_bytes)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said there is one
            documents.append((node.start_mark.line + 1, loader.construct_document(node)))
        return documents
    except yaml.YAMLError as error:
        raise _error(error) from None
    finally:
        loader.dispose()


def shorten(value: Any, limit: int = MAX_MESSAGE) -> str:
    """`value` as text for an error message, cut to `limit` characters."""
    text = value if isinstance(value, str) else reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
