"""Refuse requests whose path or query parameters hold a NUL character.

PostgreSQL cannot store or compare a string with NUL in it: a filter such as
`?team=a%00` reached the database and answered 500 (schemathesis found it on the
compliance and policy endpoints). No legitimate name, label or filter value contains NUL,
so the request is refused before any view: 400, in the API's JSON error shape under /api/.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.decorators import sync_and_async_middleware

MESSAGE = "The request's path or query parameters contain a NUL character."


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path:
        return True
    return any(
        "\x00" in key or any("\x00" in value for value in values)
        for key, values in request.GET.lists()
    )


def _refusal(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        error = {"status": 400, "code": "invalid", "message": MESSAGE}
        return JsonResponse({"error": error}, status=400)
    return HttpResponseBadRequest(MESSAGE, content_type="text/plain")


@sync_and_async_middleware
def nul_guard_middleware(get_response: Any) -> Any:
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            if _has_nul(request):
                return _refusal(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            if _has_nul(request):
                return _refusal(request)
            return get_response(request)

    return middleware
