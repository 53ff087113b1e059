"""Label matchers as Alertmanager's silences use them: `name=value`, `name!=value`,
`name=~regex`, `name!~regex`. Regular expressions are anchored at both ends (Alertmanager
matches `^(?:regex)$`); a label that is absent matches as the empty string. Pure logic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
MAX_MATCHERS = 20
MAX_VALUE = 500
# A quantified group that is itself quantified, e.g. (a+)+ or (x|y*)*: Python's regular
# expressions backtrack exponentially on such a pattern (Alertmanager's RE2 does not), and
# every evaluation and flush matches silences, so these are refused.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[*+}](?:[^()\\]|\\.)*\)\s*[*+{]")


class MatcherError(ValueError):
    """A matcher that cannot be read; the message says why, for a 400."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            if _NESTED_QUANTIFIER.search(self.value):
                raise MatcherError(
                    f"{self.name}{self.op}: a repeated group that repeats inside, such as "
                    "(a+)+, can take forever to match; write it without the nesting."
                )
            try:
                re.compile(self.value)
            except re.error as error:
                problem = f"{self.name}{self.op}: not a regular expression ({error})."
                raise MatcherError(problem) from None

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """`region=~"eu-.*"`: a name, an operator and a value (quotes optional)."""
    if not isinstance(text, str):
        raise MatcherError('A matcher is a string such as region="eu-west-1".')
    found = _LINE.match(text)
    if found is None:
        raise MatcherError(
            f"{text[:100]!r} is not a matcher: use name=value, name!=value, name=~regex "
            "or name!~regex."
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if len(value) > MAX_VALUE:
        raise MatcherError(f"{name}: the value is longer than {MAX_VALUE} characters.")
    return Matcher(name, op, value)  # type: ignore[arg-type]


def parse_matchers(texts: list[str]) -> list[Matcher]:
    """A silence's matchers: at least one, and not only ones that match everything."""
    if not isinstance(texts, list) or not texts:
        raise MatcherError('Give at least one matcher, e.g. region="eu-west-1".')
    if len(texts) > MAX_MATCHERS:
        raise MatcherError(f"At most {MAX_MATCHERS} matchers.")
    matchers = [parse_matcher(text) for text in texts]
    if all(m.matches({}) for m in matchers):
        # Alertmanager refuses these too: a silence that matches an alert without labels
        # would silence everything.
        raise MatcherError("These matchers match every alert; name a label value to match.")
    return matchers


def all_match(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
