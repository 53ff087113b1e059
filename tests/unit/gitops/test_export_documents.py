"""The export's YAML: every text reads back exactly through gitops' own parser, multi-line
texts as literal blocks where YAML allows it."""

from __future__ import annotations

import pytest

from gitops.documents import parse_documents
from gitops.export import document


@pytest.mark.parametrize(
    "text",
    [
        "kind: Deployment\nmetadata: {name: web}\n",
        "no trailing newline\nsecond line",
        "trailing spaces   \nare kept\n",
        "  indented first line\nthen not\n",
        "tabs\there\n\n\nblank lines kept\n\n",
        "ünïcode and 'quotes' and \"double\" # not a comment\n",
        "one line",
        "",
    ],
)
def test_every_text_reads_back_exactly(text: str) -> None:
    written = document("Application", "web", {"namespace": "shop", "manifests": text})

    [read] = parse_documents([("applications/web.yaml", written)])

    assert (read.kind, read.name, read.line) == ("Application", "web", 1)
    assert read.spec == {"namespace": "shop", "manifests": text}


def test_multi_line_text_is_a_literal_block_in_field_order() -> None:
    written = document("Policy", "p", {"severity": "high", "rules": [{"expression": "a &&\nb"}]})

    assert written == (
        "apiVersion: keelson.io/v1\nkind: Policy\nmetadata:\n  name: p\nspec:\n"
        "  severity: high\n  rules:\n  - expression: |-\n      a &&\n      b\n"
    )
