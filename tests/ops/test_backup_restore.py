"""Backup and restore against the real PostgreSQL (operations/backup.py, docs/operations.md).

A hub with clusters and their credentials is backed up; the backup is restored by the
command line into a fresh empty database; the hub started on that database passes Django's
checks, decrypts the credentials with the same keys and answers an API request with a
token made before the backup. With other keys the restore refuses, naming the setting, and
the database is left as it was (empty, or with its data even under --force).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from tests.support import child_database_url, free_port

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"edge-a": "token-of-edge-a", "edge-b": "token-of-edge-b"}

DECRYPT = """
import json
from clusters.models import Cluster
from clusters.services.credentials import credential_read
specs = {c.name: credential_read(cluster=c, purpose="restore-test")[0].token
         for c in Cluster.objects.order_by("name")}
print(json.dumps(specs))
"""


def _connect(name: str = "postgres") -> Any:
    from django.conf import settings

    db = settings.DATABASES["default"]
    conn = psycopg2.connect(
        dbname=name,
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"] or 5432,
    )
    conn.autocommit = True
    return conn


def _drop(conn: Any, name: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def empty_database() -> Iterator[Any]:
    """A factory of fresh empty databases beside the test database (dropped afterwards):
    returns each one's DATABASE_URL."""
    base = child_database_url()
    conn = _connect()
    made: list[str] = []

    def make(suffix: str) -> str:
        name = base.rsplit("/", 1)[1] + f"_{suffix}"
        _drop(conn, name)
        with conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return base.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in made:
        _drop(conn, name)
    conn.close()


def _manage(url: str, *args: str, keys: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url)
    if keys is not None:
        env["KEELSON_ENCRYPTION_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _tables(url: str) -> int:
    conn = _connect(url.rsplit("/", 1)[1])
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def _cluster_names(url: str) -> list[str]:
    code = (
        "import json; from clusters.models import Cluster; "
        "print(json.dumps(sorted(Cluster.objects.values_list('name', flat=True))))"
    )
    result = _manage(url, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 (loopback)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def hub_with_credentials(transactional_db: None) -> str:
    """Two clusters with stored credentials and an API token of their team's admin."""
    from accounts.choices import Role
    from accounts.tokens import api_token_create
    from clusters.choices import CredentialKind
    from clusters.services.credentials import credential_store
    from kube.client import ConnectionSpec
    from tests.factories import make_cluster, make_team, member_of

    team = make_team(name="payments")
    owner = member_of(team, Role.ADMIN)
    for name, token in TOKENS.items():
        cluster = make_cluster(team=team, name=name)
        spec = ConnectionSpec(server=f"https://{name}.example:6443", token=token)
        credential_store(cluster=cluster, spec=spec, kind=CredentialKind.TOKEN)
    return api_token_create(user=owner.user, name="before backup", scope="read").secret


def test_a_backup_restores_into_an_empty_database_and_the_hub_runs_on_it(
    hub_with_credentials: str, empty_database: Any, tmp_path: Path
) -> None:
    # given a backup of the hub
    backup = tmp_path / "hub.keelson-backup"
    out = _run_command("keelson_backup", str(backup))
    assert backup.stat().st_mode & 0o777 == 0o600
    assert "/" in out and "tables" in out  # the progress line
    manifest = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(backup), "manifest.json"], capture_output=True, check=True
        ).stdout
    )
    # the manifest names the applied head of every app (the test database is fully migrated)
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    leaves: dict[str, list[str]] = {}
    for app, name in MigrationLoader(connection).graph.leaf_nodes():
        leaves.setdefault(app, []).append(name)
    assert manifest["migrations"] == {app: sorted(names) for app, names in leaves.items()}
    assert manifest["keelson_version"] and manifest["created_at"]
    assert os.environ["KEELSON_ENCRYPTION_KEYS"] not in backup.read_bytes().decode("latin-1")

    # when it is restored into a fresh empty database by the command line
    url = empty_database("restored")
    restored = _manage(url, "keelson_restore", str(backup))

    # then the hub runs on it: checks pass, credentials decrypt with the same keys ...
    assert restored.returncode == 0, restored.stderr
    assert "restore: " in restored.stdout and "migrated" in restored.stdout
    check = _manage(url, "check")
    assert check.returncode == 0, check.stderr
    decrypted = _manage(url, "shell", "-c", DECRYPT)
    assert decrypted.returncode == 0, decrypted.stderr
    assert json.loads(decrypted.stdout.strip().splitlines()[-1]) == TOKENS
    plan = _manage(url, "migrate", "--check")
    assert plan.returncode == 0, plan.stdout

    # ... and the web answers with the data and a token made before the backup
    with _web(url) as base:
        assert _get(f"{base}/readyz")[0] == 200
        status, body = _get(f"{base}/api/v1/clusters/", token=hub_with_credentials)
        assert status == 200, body
        assert sorted(c["name"] for c in json.loads(body)["results"]) == sorted(TOKENS)

    # and a second restore into the now non-empty database needs --force
    again = _manage(url, "keelson_restore", str(backup))
    assert again.returncode != 0
    assert "not empty" in again.stderr and "--force" in again.stderr
    forced = _manage(url, "keelson_restore", "--force", str(backup))
    assert forced.returncode == 0, forced.stderr
    assert _cluster_names(url) == sorted(TOKENS)


def test_other_keys_are_refused_and_nothing_changes(
    hub_with_credentials: str, empty_database: Any, tmp_path: Path
) -> None:
    # given a backup, a database restored from it and an empty one
    backup = tmp_path / "hub.keelson-backup"
    _run_command("keelson_backup", str(backup))
    restored = empty_database("restored")
    assert _manage(restored, "keelson_restore", str(backup)).returncode == 0
    empty = empty_database("empty")
    other_keys = Fernet.generate_key().decode()

    # when a hub with other keys restores it, even with --force
    into_empty = _manage(empty, "keelson_restore", str(backup), keys=other_keys)
    into_full = _manage(restored, "keelson_restore", "--force", str(backup), keys=other_keys)

    # then both refuse with a message naming the setting, and change nothing
    for refused in (into_empty, into_full):
        assert refused.returncode != 0
        assert "KEELSON_ENCRYPTION_KEYS" in refused.stderr
        assert "Nothing was changed" in refused.stderr
        assert other_keys not in refused.stderr + refused.stdout
        assert "Traceback" not in refused.stderr
    assert _tables(empty) == 0
    assert _cluster_names(restored) == sorted(TOKENS)


def test_a_file_that_is_not_a_backup_is_refused(
    transactional_db: None, empty_database: Any, tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    url = empty_database("bogus")
    refused = _manage(url, "keelson_restore", str(bogus))
    assert refused.returncode != 0
    assert "is not a Keelson backup" in refused.stderr
    assert _tables(url) == 0


def _run_command(*args: str) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class _web:
    """uvicorn on the given database, for one block."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.server: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        port = free_port()
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fleet.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
            ],
            cwd=REPO,
            env=dict(os.environ, DATABASE_URL=self.url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.server.poll() is None, "uvicorn exited"
            try:
                _get(f"{base}/healthz")
                return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError("uvicorn did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.terminate()
        self.server.wait(timeout=15)


def test_a_failed_forced_restore_leaves_the_database_as_it_was(
    hub_with_credentials: str, empty_database: Any, tmp_path: Path
) -> None:
    # given a restored database whose data then changed, and a server that will refuse the
    # restore's first CREATE INDEX (after --force dropped the tables and the new rows
    # were loaded: the worst moment to fail)
    backup = tmp_path / "hub.keelson-backup"
    _run_command("keelson_backup", str(backup))
    url = empty_database("full")
    assert _manage(url, "keelson_restore", str(backup)).returncode == 0
    conn = _connect(url.rsplit("/", 1)[1])
    with conn.cursor() as cursor:
        cursor.execute("UPDATE clusters_cluster SET name = 'edge-z' WHERE name = 'edge-a'")
        cursor.execute("CREATE SCHEMA guard")
        cursor.execute(
            "CREATE FUNCTION guard.refuse() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'index creation refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE EVENT TRIGGER refuse_indexes ON ddl_command_end "
            "WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION guard.refuse()"
        )
    conn.close()

    # when the backup is restored over it with --force
    failed = _manage(url, "keelson_restore", "--force", str(backup))

    # then the restore says it failed and rolled back, and the database is as it was
    assert failed.returncode != 0
    assert "rolled back" in failed.stderr and "index creation refused" in failed.stderr
    assert _cluster_names(url) == ["edge-b", "edge-z"]


def test_a_backup_never_overwrites_and_says_where_it_cannot_write(db: None, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    existing = tmp_path / "kept.kbak"
    existing.write_text("an older backup")
    with pytest.raises(CommandError, match="exists; give a new file name"):
        _run_command("keelson_backup", str(existing))
    assert existing.read_text() == "an older backup"
    with pytest.raises(CommandError, match="is not a directory"):
        _run_command("keelson_backup", str(tmp_path / "missing" / "x.kbak"))
    # a directory no one may create files in (/proc refuses even root)
    with pytest.raises(CommandError, match=r"cannot write /proc/x\.kbak"):
        _run_command("keelson_backup", "/proc/x.kbak")
