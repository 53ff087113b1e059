"""The typed environment readers of fleet/env.py."""

from __future__ import annotations

import pytest

from fleet.env import ImproperEnvironment, env_bool, env_float, env_int, parse_database_url


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


def test_a_number_reader_takes_decimals_and_refuses_what_is_not_a_finite_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert env_float("X_SECONDS", 5.0) == 5.0  # unset: the default
    monkeypatch.setenv("X_SECONDS", "2.5")
    assert env_float("X_SECONDS", 5.0) == 2.5
    monkeypatch.setenv("X_SECONDS", "")
    assert env_float("X_SECONDS", 5.0) == 5.0
    for bad, message in (
        ("soon", "X_SECONDS='soon' is not a number"),
        ("nan", "X_SECONDS='nan' is not a finite number"),
        ("inf", "X_SECONDS='inf' is not a finite number"),
        ("0.01", "X_SECONDS=0.01 must be at least 0.1"),
    ):
        monkeypatch.setenv("X_SECONDS", bad)
        with pytest.raises(ImproperEnvironment, match=message.replace(".", r"\.")):
            env_float("X_SECONDS", 5.0, minimum=0.1)
