"""Strict, bounded JSON for the API and the agent.

Python's `json` accepts what no other part of Keelson can hold: integers of any length
(PostgreSQL's bigint and JSON consumers stop at 64 bits), `1e400` (read as infinity),
`NaN`/`Infinity`, and nesting until the interpreter's recursion limit (a RecursionError,
so a 500). Every JSON body is read here instead: at most the endpoint's byte limit, at most
`MAX_JSON_DEPTH` levels, integers within 64 bits, finite numbers only. Anything else is a
400 (413 past the size) in the API's error shape.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import IO, Any, cast

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Kubernetes objects nest about 15 levels (a CronJob's container env value source is 13);
# 64 leaves room for CRDs and manifests without letting a body recurse through the server.
MAX_JSON_DEPTH = 64


class JSONRejected(ValueError):
    """A body that is JSON but not one Keelson accepts (the message says why)."""


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # past Python's digit limit for int(): certainly past 64 bits
        raise JSONRejected("a number is beyond 64-bit integers") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise JSONRejected("a number is beyond 64-bit integers")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRejected(f"the number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JSONRejected(f"{name} is not JSON")


def _depth_error(value: Any) -> str | None:
    """Walk the parsed value without recursion; a message if it nests too deep or holds a
    NUL character (PostgreSQL stores NUL in neither text nor jsonb: it answered 500)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a string contains a NUL character"
            continue
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                return "a string contains a NUL character"
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if children and depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, str | dict | list)
        )
    return None


def strict_json_loads(data: bytes | str) -> Any:
    """`json.loads` within Keelson's limits; JSONRejected (a ValueError) says why not."""
    try:
        value = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JSONRejected(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except JSONRejected:
        raise
    except (ValueError, UnicodeDecodeError) as error:
        raise JSONRejected(f"invalid JSON: {str(error)[:200]}") from None
    if (problem := _depth_error(value)) is not None:
        raise JSONRejected(problem)
    return value


def body_limit(view: Any) -> int:
    """The endpoint's body limit in bytes: its `max_body_bytes`, else the API default."""
    limit = getattr(view, "max_body_bytes", None)
    return int(limit) if limit else int(settings.KEELSON_API_MAX_BODY_BYTES)


def _refuse_declared(parser_context: Mapping[str, Any] | None) -> int:
    """The view's limit; RequestTooLarge (413) at once when Content-Length exceeds it."""
    context = parser_context or {}
    limit = body_limit(context.get("view"))
    request = context.get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and str(declared).isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    return limit


def read_limited(stream: Any, parser_context: Mapping[str, Any] | None) -> bytes:
    """The body, or RequestTooLarge (413) past the view's limit; never reads more than
    the limit and one byte."""
    limit = _refuse_declared(parser_context)
    data: bytes = stream.read(limit + 1)
    if len(data) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    return data


class _BoundedStream:
    """A request stream that refuses (413) to yield more than `limit` bytes in all."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream, self._left = stream, limit

    def read(self, size: int = -1) -> bytes:
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data: bytes = self._stream.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise RequestTooLarge("The request body is larger than the endpoint accepts.")
        return data


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with the limits above and a per-view byte limit."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = read_limited(stream, parser_context)
        try:
            return strict_json_loads(data)
        except JSONRejected as error:
            raise ParseError(f"JSON parse error: {error}") from None


def refuse_nul_fields(data: Any) -> None:
    """Form fields holding NUL are refused as JSON strings are (PostgreSQL cannot take them)."""
    for key, values in data.lists():
        if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values):
            raise ParseError("Form parse error: a field contains a NUL character")


class LimitedFormParser(FormParser):
    """DRF's form parser (it reads the whole body) within the view's byte limit."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = super().parse(
            io.BytesIO(read_limited(stream, parser_context)), media_type, parser_context
        )
        refuse_nul_fields(data)
        return data


class NulRefusingMultiPartParser(MultiPartParser):
    """DRF's multipart parser within the view's byte limit (file parts included: Django's
    upload settings bound only the other fields), NUL fields refused."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = _refuse_declared(parser_context)
        bounded = cast(IO[bytes], _BoundedStream(stream, limit))
        parsed = super().parse(bounded, media_type, parser_context)
        refuse_nul_fields(parsed.data)
        return parsed
