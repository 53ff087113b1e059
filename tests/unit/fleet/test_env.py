"""The typed environment readers of fleet/env.py."""

from __future__ import annotations

import pytest

from fleet.env import ImproperEnvironment, env_bool, env_int, parse_database_url


def test_database_url_parsing() -> None:
    config = parse_database_url("postgres://app:p%40ss@db.internal:6543/keelson?sslmode=require")
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", "6543", "keelson")
    assert (config["USER"], config["PASSWORD"]) == ("app", "p@ss")
    assert config["OPTIONS"] == {"sslmode": "require"}
    socket_config = parse_database_url("postgres://postgres@%2Ftmp%2Fpg:5433/keelson")
    assert socket_config["HOST"] == "/tmp/pg"


def test_typed_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "Yes")
    monkeypatch.setenv("X_NUM", "3")
    assert env_bool("X_FLAG") is True
    assert env_int("X_NUM", 1) == 3
    with pytest.raises(ImproperEnvironment, match="at least 5"):
        env_int("X_NUM", 1, minimum=5)
