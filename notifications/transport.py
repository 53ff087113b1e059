"""Sending: one HTTP POST or one e-mail, each bounded in time, with errors that say
whether retrying can help and never carry a secret (a webhook URL's path is one, so no
error names the URL: urllib3's messages do, so they are not passed on)."""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import threading
from dataclasses import dataclass

import urllib3
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from core import egress

# A query may carry what an authority may not (percent-encoding: Power Automate's workflow
# URLs sign themselves in the query); never whitespace, controls, backslashes or non-ASCII.
_QUERY_FORBIDDEN = re.compile(r"[\\#\s\x00-\x1f\x7f]|[^\x00-\x7f]")


def parse_webhook_url(url: str) -> egress.Server:
    """Parse a webhook URL as strictly as a cluster URL (core/egress.py), but allow a query
    string: incoming webhooks of Microsoft's Power Automate carry their signature there.
    The part before the query passes `parse_server`; the query may not change the host."""
    base, sep, query = url.partition("?")
    server = egress.parse_server(base)
    if sep:
        if not query or _QUERY_FORBIDDEN.search(query) or len(url) > egress.MAX_URL_LENGTH:
            raise egress.EgressDenied(
                "The URL's query may not be empty or hold whitespace, control or non-ASCII "
                "characters, backslashes or a fragment."
            )
        theirs = urllib3.util.parse_url(url)
        if (theirs.host or "").lower().strip("[]") != server.host or (
            theirs.port or server.port
        ) != server.port:
            raise egress.EgressDenied("The URL is ambiguous: its host cannot be read one way.")
    return server


def check_webhook_url(url: str) -> egress.Server:
    """`parse_webhook_url`, then the egress policy on its host (as `check_egress`)."""
    server = parse_webhook_url(url)
    default = 443 if server.scheme == "https" else 80
    port = "" if server.port == default else f":{server.port}"
    host = f"[{server.host}]" if ":" in server.host else server.host
    egress.check_egress(f"{server.scheme}://{host}{port}{server.path}")
    return server


class SendError(Exception):
    """A delivery attempt failed; `transient` says whether a later attempt may succeed.
    The message is safe to store and show (no URL, no secret)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class Sent:
    status: int


_posting = threading.local()


class _HideWebhookPaths(logging.Filter):
    """urllib3 logs each request's path at DEBUG; a webhook's path carries its token. The
    settings keep urllib3 at ERROR; should its level ever be lowered, the records of the
    request this thread is sending are dropped all the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(_posting, "path", "")
        if not path:
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        return not any(path in str(arg) for arg in args) and path not in str(record.msg)


logging.getLogger("urllib3.connectionpool").addFilter(_HideWebhookPaths())


def _pool_manager() -> urllib3.PoolManager:
    # The socket goes to an address the egress policy allows, checked at each connection
    # (core/egress.py), as for member clusters: a webhook host that resolves to a private
    # or metadata address since it was saved is refused.
    return egress.guard_pools(urllib3.PoolManager(num_pools=20, maxsize=2, retries=False))


_manager = _pool_manager()


def _timeout() -> urllib3.Timeout:
    total = float(settings.KEELSON_NOTIFY_TIMEOUT)
    return urllib3.Timeout(total=total, connect=min(total, 3.0), read=total)


def post_json(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Sent:
    """POST `body` (JSON) to `url`; redirects are not followed (one could lead past the
    egress check's first answer). 2xx is success; 408, 425, 429 and 5xx are transient."""
    try:
        server = parse_webhook_url(url)
    except egress.EgressDenied as error:
        raise SendError(str(error), transient=False) from None
    sent_headers = {"Content-Type": "application/json", "User-Agent": "Keelson-Notifications/1"}
    sent_headers.update(headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        sent_headers["Authorization"] = f"Basic {token}"
    _posting.path = urllib3.util.parse_url(url).request_uri
    try:
        return _post(server, url, body, sent_headers)
    finally:
        _posting.path = ""


def _post(server: egress.Server, url: str, body: bytes, headers: dict[str, str]) -> Sent:
    try:
        response = _manager.request(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=_timeout(),
            redirect=False,
            retries=False,
            preload_content=False,
        )
    except egress.EgressDenied as error:
        raise SendError(str(error), transient=False) from None
    except NewConnectionError as error:  # before ConnectTimeoutError: urllib3 derives it
        reason = type(error.__cause__ or error).__name__
        raise SendError(f"Could not reach {server.host} ({reason}).", transient=True) from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise SendError(
            f"{server.host} did not answer within {settings.KEELSON_NOTIFY_TIMEOUT} s.",
            transient=True,
        ) from None
    except NameResolutionError:
        raise SendError(f"{server.host} does not resolve.", transient=True) from None
    except HTTPError as error:
        reason = type(getattr(error, "reason", None) or error).__name__
        raise SendError(f"Could not reach {server.host} ({reason}).", transient=True) from None
    try:
        response.read(64 * 1024, decode_content=False)  # enough to free the connection
    except HTTPError:
        pass
    finally:
        response.release_conn()
    status = response.status
    if 200 <= status < 300:
        return Sent(status=status)
    transient = status in (408, 425, 429) or status >= 500
    raise SendError(f"{server.host} answered HTTP {status}.", transient=transient, status=status)


def send_email(*, recipients: list[str], subject: str, text: str, html: str) -> Sent:
    """One message with a plain-text and an HTML part, through Django's e-mail backend,
    with EMAIL_TIMEOUT bounding each socket operation."""
    connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused:
        raise SendError("The mail server refused every recipient.", transient=False) from None
    except smtplib.SMTPAuthenticationError:
        raise SendError("The mail server refused Keelson's login.", transient=False) from None
    except smtplib.SMTPResponseException as error:
        transient = not 500 <= error.smtp_code < 600
        raise SendError(
            f"The mail server answered {error.smtp_code}.", transient=transient
        ) from None
    except (smtplib.SMTPException, OSError) as error:
        raise SendError(
            f"Could not reach the mail server ({type(error).__name__}).", transient=True
        ) from None
    return Sent(status=250)
