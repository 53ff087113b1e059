"""Decoding cluster answers: orjson where it is exact, the json module wherever a number
may lie past 64 bits (orjson would turn it into a float)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kube.client import decode_json

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # any size: past 2**64 as well
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_every_value_decodes_exactly(value: Any) -> None:
    body = json.dumps({"items": [value]}).encode()
    assert decode_json(body) == json.loads(body)


def test_numbers_past_64_bits_stay_integers() -> None:
    big = 2**64 + 1
    decoded = decode_json(f'{{"spec": {{"replicas": {big}, "small": -{big}}}}}'.encode())
    assert decoded == {"spec": {"replicas": big, "small": -big}}
    assert isinstance(decoded["spec"]["replicas"], int)


def test_a_long_digit_run_in_text_costs_only_the_slower_decoder() -> None:
    body = b'{"metadata": {"uid": "12345678901234567890123", "n": 18446744073709551615}}'
    assert decode_json(body) == {"metadata": {"uid": "12345678901234567890123", "n": 2**64 - 1}}
