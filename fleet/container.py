"""The container image's entry point: one image, the command selects the process.

    python -m fleet.container web | worker | beat | migrate | healthcheck | manage <args>

`migrate` runs here (one pod at a time, see `migrate`); every other role replaces this
process (exec) with the same command line `make run` starts, so the server is PID 1 and
receives the orchestrator's SIGTERM itself. Settings come from the environment as
everywhere (docs/configuration.md); the image's own defaults are in the Dockerfile.
Writable paths: /tmp and KEELSON_VAR_DIR (the web's PROMETHEUS_MULTIPROC_DIR lives under
it); the root filesystem may be read-only.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from fleet.webserver import web_command

# Several web pods start at once, each with a `migrate` init container: they take turns.
MIGRATE_LOCK_KEY = (0x6B656C73, 3)  # "kels", 3 (fleet/beat.py holds 1)
ROLES = ("web", "worker", "beat", "migrate", "healthcheck", "manage")
MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name}={value!r} must be a positive integer")
    return int(value)


def container_command(role: str, args: list[str], env: Mapping[str, str]) -> list[str]:
    """The command line of `role` (pure: the environment is passed in)."""
    bin_dir = Path(sys.executable).parent
    python = sys.executable
    if role == "web":
        return web_command(
            bin_dir,
            host=env.get("KEELSON_HOST", "0.0.0.0"),  # noqa: S104 (a container's own address)
            port=_int(env, "KEELSON_PORT", 8000),
            workers=_int(env, "KEELSON_WEB_WORKERS", 2),
            env=dict(env),
        )
    if role == "worker":
        from core.celery import QUEUES

        queues = env.get("KEELSON_WORKER_QUEUES", "").strip() or ",".join(QUEUES)
        unknown = sorted(set(queues.split(",")) - set(QUEUES))
        if unknown:
            raise SystemExit(
                f"KEELSON_WORKER_QUEUES: unknown queue(s) {', '.join(unknown)}; "
                f"choose among {', '.join(QUEUES)}"
            )
        return [
            str(bin_dir / "celery"), "-A", "fleet", "worker", "-l", "info", "-Q", queues,
            "--concurrency", str(_int(env, "KEELSON_WORKER_CONCURRENCY", os.cpu_count() or 2)),
            "-n", "worker@%h",
        ]  # fmt: skip
    if role == "beat":
        return [str(bin_dir / "celery"), "-A", "fleet", "beat", "-l", "info"]
    if role == "manage":
        return [python, MANAGE, *args]
    raise SystemExit(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def healthcheck(env: Mapping[str, str], pid1: Path = Path("/proc/1/cmdline")) -> int:
    """The image's HEALTHCHECK: the web answers /healthz; a worker or beat container is
    healthy while its process runs (it is PID 1: when it exits, the container stops)."""
    cmdline = pid1.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if "uvicorn" not in cmdline:
        return 0
    url = f"http://127.0.0.1:{_int(env, 'KEELSON_PORT', 8000)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def migrate() -> int:
    """`migrate --noinput` under an advisory lock, so that the init containers of pods
    started together apply the migrations one after the other (the later ones find
    nothing to do) instead of racing on the same tables."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    django.setup()
    from django.core.management import call_command

    from core.db.locks import advisory_lock

    with advisory_lock(MIGRATE_LOCK_KEY, wait=True):
        call_command("migrate", interactive=False)
    return 0


def _prepare_web(env: dict[str, str]) -> None:
    """The web's worker processes share their metrics through a directory emptied at each
    start (metrics/process.py); in a container it lives under the writable KEELSON_VAR_DIR."""
    if "PROMETHEUS_MULTIPROC_DIR" not in env:
        var = Path(env.get("KEELSON_VAR_DIR", "/var/lib/keelson"))
        env["PROMETHEUS_MULTIPROC_DIR"] = str(var / "prometheus-web")
    shared = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ROLES:
        sys.stderr.write(f"usage: python -m fleet.container {{{'|'.join(ROLES)}}} [args]\n")
        return 2
    role, args = argv[0], argv[1:]
    env = dict(os.environ)
    if role == "healthcheck":
        return healthcheck(env)
    if role == "migrate":
        return migrate()
    command = container_command(role, args, env)
    if role == "web":
        _prepare_web(env)
    os.execve(command[0], command, env)  # noqa: S606 (our own command line, no shell)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
