"""JSON errors with a clear message for every API failure; refusals are audited."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from audit.services import audit_record_denied


def _message(detail: Any) -> str:
    """One human sentence out of DRF's nested error detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _message(value)
            return inner if field in ("detail", "non_field_errors") else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _message(detail[0])
    return str(detail)


def keelson_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # accounts.permissions.require_role records a refusal itself when given the request
    audited = bool(getattr(exc, "audited", False))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)  # a service's reason, if any
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a server error: Django's 500 handling (no details leak with DEBUG off)

    request = context.get("request")
    if (
        not audited
        and request is not None
        and response.status_code
        in (
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_403_FORBIDDEN,
        )
    ):
        audit_record_denied(request=request, reason=_message(response.data))

    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    # A field error can still say which check failed (e.g. "tls", "unauthorized").
    code = getattr(exc, "keelson_code", None) or code
    body: dict[str, Any] = {
        "error": {
            "status": response.status_code,
            "code": code,
            "message": _message(response.data),
        }
    }
    if isinstance(exc, exceptions.ValidationError) and isinstance(response.data, dict):
        body["error"]["fields"] = response.data
    response.data = body
    return response
