"""`make run`: Keelson's web, worker and beat on one machine, embedded servers by default.

Without DATABASE_URL / REDIS_URL / CELERY_BROKER_URL it starts an embedded PostgreSQL and
Redis with their data under ./var/ (Redis doubles as the Celery broker); with them set it
uses those servers. Output lines are prefixed by process; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from fleet.embedded import EmbeddedPostgres, EmbeddedRedis
from fleet.env import env_bool
from fleet.webserver import web_command
from localkube.binaries import BUILD_SCRIPT, KubeBinariesMissing, find_binaries
from localkube.runtime import progress_path, write_progress

ROOT = Path(__file__).resolve().parent.parent
COLORS = {"web": "36", "worker": "33", "beat": "35", "keelson": "32", "kube": "34"}
# What `make run` chose, for `make manage` and tools that talk to a running instance
# (var/run.env; no secrets: those stay in var/secrets.env).
RUN_ENV_KEYS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DEBUG",
    "ALLOWED_HOSTS",
    "KEELSON_VAR_DIR",
    "KEELSON_CLUSTER_ALLOW_LOOPBACK",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
)


def say(source: str, line: str) -> None:
    color = COLORS.get(source, "0") if sys.stdout.isatty() else ""
    prefix = f"{source:<7}|"
    if color:
        prefix = f"\033[{color}m{prefix}\033[0m"
    sys.stdout.write(f"{prefix} {line}\n")
    sys.stdout.flush()


def _load_or_create_secrets(var: Path) -> dict[str, str]:
    """Secrets for this installation, generated once and kept in var/secrets.env (0600)."""
    path = var / "secrets.env"
    if not path.exists():
        path.write_text(
            f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"KEELSON_ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
        )
        path.chmod(0o600)
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            values[key] = value
    return values


def _pump(source: str, stream: object) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        say(source, raw.decode(errors="replace").rstrip())


def _write_run_env(var: Path, env: dict[str, str]) -> None:
    """The settings this run chose, minus secrets: a URL holding a password stays out."""
    lines = []
    for key in RUN_ENV_KEYS:
        value = env.get(key)
        if value is None or (key.endswith("_URL") and urlsplit(value).password):
            continue
        lines.append(f"{key}={value}")
    path = var / "run.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def _kube_runtime_missing() -> bool:
    try:
        find_binaries()
    except KubeBinariesMissing:
        return True
    return False


def _start_kube_build(var: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Build the local Kubernetes runtime in the background; progress in var/kube-runtime.json
    (shown on the overview), output in var/kube-build.log."""
    progress = progress_path(var)
    write_progress(progress, state="building", percent=0, step="starting")
    build_env = dict(env, KEELSON_KUBE_PROGRESS=str(progress))
    with (var / "kube-build.log").open("ab") as log:
        return subprocess.Popen(
            ["bash", str(BUILD_SCRIPT)],
            cwd=ROOT,
            env=build_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run")
    parser.add_argument("--host", default=os.environ.get("KEELSON_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEELSON_PORT", "8000")))
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--web-workers",
        type=int,
        default=int(os.environ.get("KEELSON_WEB_WORKERS", "2")),
        help="uvicorn worker processes for the web (2: one process absorbs 200-350 agent "
        "heartbeats a second on 2 busy cores; 10,000 agents at 30 s send 333)",
    )
    parser.add_argument(
        "--no-demo",
        dest="demo",
        action="store_false",
        default=env_bool("KEELSON_DEMO_FLEET", True),
        help="do not create the demo fleet of local clusters on an empty registry "
        "(KEELSON_DEMO_FLEET=off)",
    )
    args = parser.parse_args(argv)

    var = Path(os.environ.get("KEELSON_VAR_DIR", ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The local provider's clusters (and the demo fleet) listen on loopback.
    env.setdefault("KEELSON_CLUSTER_ALLOW_LOOPBACK", "true")
    env.setdefault("KEELSON_VAR_DIR", str(var))
    for key, value in _load_or_create_secrets(var).items():
        env.setdefault(key, value)
    # A laptop run over plain HTTP: production settings, minus what needs TLS.
    env.setdefault("DEBUG", "false")
    env.setdefault("ALLOWED_HOSTS", f"localhost,127.0.0.1,{args.host}")
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        env.setdefault(name, "false")
    env.setdefault("SECURE_HSTS_SECONDS", "0")
    env.setdefault("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false")
    env.setdefault("SECURE_HSTS_PRELOAD", "false")

    postgres = redis = None
    manage: list[str] = []
    children: dict[str, subprocess.Popen[bytes]] = {}
    kube_build: subprocess.Popen[bytes] | None = None
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "DATABASE_URL" not in env:
            say("keelson", f"starting embedded PostgreSQL (data in {var / 'postgres'})")
            postgres = EmbeddedPostgres(var / "postgres")
            env["DATABASE_URL"] = postgres.start()
        if "REDIS_URL" not in env:
            say("keelson", f"starting embedded Redis (data in {var / 'redis'})")
            redis = EmbeddedRedis(var / "redis")
            env["REDIS_URL"] = redis.start()
        if "CELERY_BROKER_URL" not in env:
            env["CELERY_BROKER_URL"] = env["REDIS_URL"].rsplit("/", 1)[0] + "/1"
            say("keelson", "Celery broker: the embedded Redis (set CELERY_BROKER_URL for RabbitMQ)")

        _write_run_env(var, env)
        python = sys.executable
        manage += [python, str(ROOT / "manage.py")]
        say("keelson", "applying database migrations")
        subprocess.run(
            [*manage, "migrate", "--noinput"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        subprocess.run(
            [*manage, "collectstatic", "--noinput"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        subprocess.run([*manage, "keelson_bootstrap"], env=env, check=True)
        subprocess.run([*manage, "keelson_local_clusters", "resume"], env=env, check=True)

        bin_dir = Path(python).parent
        commands = {
            "web": web_command(
                bin_dir, host=args.host, port=args.port, workers=args.web_workers, env=env
            ),
            "worker": [
                str(bin_dir / "celery"),
                "-A",
                "fleet",
                "worker",
                "-l",
                "info",
                "-Q",
                "default,clusters,provisioning,placement,policies,reports,costs,notifications,alerts",
                "--concurrency",
                str(args.concurrency),
                "-n",
                "worker@%h",
            ],
            "beat": [
                str(bin_dir / "celery"),
                "-A",
                "fleet",
                "beat",
                "-l",
                "info",
            ],
        }
        # The web workers share their request and websocket metrics through
        # prometheus-client's multiprocess mode (metrics/process.py), emptied at each start.
        web_env = dict(env)
        if "PROMETHEUS_MULTIPROC_DIR" not in web_env:
            shared = var / "prometheus-web"
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir(parents=True)
            web_env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
        for name, command in commands.items():
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=web_env if name == "web" else env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            children[name] = process
            threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
        say("keelson", f"Keelson is up: http://{args.host}:{args.port}/  (Ctrl-C stops it)")
        if _kube_runtime_missing():
            say(
                "kube",
                "building the local Kubernetes runtime in the background (about 10 minutes, "
                "once; progress on the overview, log in var/kube-build.log)",
            )
            kube_build = _start_kube_build(var, env)
        elif args.demo:
            subprocess.run([*manage, "keelson_demo_fleet"], env=env, check=False)
        while not stopping.is_set():
            for name, process in children.items():
                if process.poll() is not None:
                    say("keelson", f"{name} exited with {process.returncode}; stopping")
                    stopping.set()
            if kube_build is not None and kube_build.poll() is not None:
                if kube_build.returncode == 0:
                    say("kube", "the local Kubernetes runtime is ready")
                    if args.demo:
                        subprocess.run([*manage, "keelson_demo_fleet"], env=env, check=False)
                else:
                    say("kube", "building the local Kubernetes runtime failed: var/kube-build.log")
                kube_build = None
            stopping.wait(0.5)
    finally:
        say("keelson", "stopping")
        if kube_build is not None and kube_build.poll() is None:
            # The whole build (make, go) is in its own session: end it all.
            os.killpg(kube_build.pid, signal.SIGTERM)
            kube_build.wait(timeout=20)
        for process in children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in children.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        if manage:
            subprocess.run(
                [*manage, "keelson_local_clusters", "stop"], env=env, check=False, timeout=120
            )
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        say("keelson", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
