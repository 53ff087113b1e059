"""Typed settings from the environment that fail loudly on bad values.

Every reader accepts ``NAME_FILE`` in place of ``NAME`` so that secrets can come from
mounted files (Docker/Kubernetes secrets) instead of the process environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from core.errors import ImproperEnvironment

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperEnvironment(
                f"{name}_FILE={file_name}: cannot read ({exc.strerror})"
            ) from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = _raw(name)
    if value is None or value == "":
        if required:
            raise ImproperEnvironment(f"{name} must be set")
        if default is None:
            return ""
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperEnvironment(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperEnvironment(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperEnvironment(f"{name}={number} must be at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperEnvironment(f"{name}={value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperEnvironment(f"{name}={value!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise ImproperEnvironment(f"{name}={number:g} must be at least {minimum:g}")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_currency(name: str, default: str) -> str:
    """An ISO 4217 currency code (three letters), upper-cased: `usd` -> `USD`."""
    value = env_str(name, default).strip().upper()
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ImproperEnvironment(
            f"{name}={value!r} is not a currency code (three letters: USD, EUR)"
        )
    return value


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    value = env_str(name, default)
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        # Never echo the URL: it may carry a password.
        raise ImproperEnvironment(
            f"{name} must be a URL with one of the schemes {', '.join(schemes)} "
            f"(got scheme {scheme!r})"
        )
    return value


def parse_database_url(
    url: str, *, name: str = "DATABASE_URL", conn_max_age: int = 0
) -> dict[str, Any]:
    """Turn ``postgres://user:pass@host:port/db?sslmode=...`` into Django's DATABASES entry.

    A Unix socket directory may be given percent-encoded as the host
    (``postgres://postgres@%2Fvar%2Frun%2Fpostgresql/keelson``) or as ``?host=/dir``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperEnvironment(f"{name} must be a postgres:// URL (got scheme {parts.scheme!r})")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperEnvironment(f"{name} must name a database (postgres://host/DBNAME)")
    options: dict[str, str] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = unquote(parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0]) if parts.netloc else ""
    host = options.pop("host", host)
    try:
        port = parts.port
    except ValueError:
        raise ImproperEnvironment(f"{name} has an invalid port") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", conn_max_age, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }
