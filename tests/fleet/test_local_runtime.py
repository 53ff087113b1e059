"""`make run` on a machine without the Kubernetes binaries: it serves at once and builds the
local runtime in the background; the overview and the local provider say how far it is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.test import Client, override_settings

from clusters.providers.local import LocalProvider
from fleet import launcher
from localkube.runtime import read_progress, write_progress
from tests.factories import make_user

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_overview_shows_the_build_progress_while_it_runs(client: Client, tmp_path: Path) -> None:
    # given: a build that reported 42 %
    write_progress(tmp_path / "kube-runtime.json", state="building", percent=42, step="compiling")
    client.force_login(make_user())

    # when
    with override_settings(VAR_DIR=tmp_path):
        page = client.get("/")

    # then: the progress, and a refresh every few seconds until it is done
    assert "Preparing local clusters… 42 %" in page.content.decode()
    assert b'<progress max="100" value="42"' in page.content
    assert b'hx-trigger="every 5s"' in page.content


@pytest.mark.django_db
def test_overview_says_when_the_build_failed_and_nothing_once_ready(
    client: Client, tmp_path: Path
) -> None:
    client.force_login(make_user())
    progress = tmp_path / "kube-runtime.json"
    write_progress(progress, state="failed", percent=0, step="the build stopped with exit code 2")
    with override_settings(VAR_DIR=tmp_path):
        failed = client.get("/").content.decode()
        write_progress(progress, state="ready", percent=100, step="ready")
        ready = client.get("/").content.decode()
    assert "Local clusters are unavailable" in failed
    assert "exit code 2" in failed and "var/kube-build.log" in failed
    assert "Preparing local clusters" not in ready and "unavailable" not in ready


def test_a_damaged_progress_file_reads_as_no_progress(tmp_path: Path) -> None:
    path = tmp_path / "kube-runtime.json"
    for text in ("", "{", '{"state": "building"}', '{"state": "odd", "percent": 1}', "[1]"):
        path.write_text(text)
        assert read_progress(tmp_path) is None, text
    path.write_text('{"state": "building", "percent": 250, "step": "x"}')
    progress = read_progress(tmp_path)
    assert progress is not None and progress.percent == 100


def test_local_provider_says_the_runtime_is_being_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: no binaries where the provider looks, a build at 10 %
    monkeypatch.setenv("KEELSON_KUBE_ASSETS", str(tmp_path / "none"))
    monkeypatch.setenv("KEELSON_VAR_DIR", str(tmp_path))
    write_progress(tmp_path / "kube-runtime.json", state="building", percent=10, step="unpacking")

    capabilities = LocalProvider().capabilities()

    assert not capabilities.provision
    assert capabilities.unavailable_reason == "Preparing local clusters… 10 % (unpacking)."


def test_the_build_script_reports_ready_for_a_runtime_that_is_there(tmp_path: Path) -> None:
    # given: a directory holding the three binaries (KEELSON_KUBE_ASSETS, as a user has them)
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        (assets / name).write_text("#!/bin/sh\n")
        (assets / name).chmod(0o755)
    progress = tmp_path / "kube-runtime.json"
    env = dict(os.environ, KEELSON_KUBE_ASSETS=str(assets), KEELSON_KUBE_PROGRESS=str(progress))

    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "kube-binaries.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(assets)
    state = read_progress(tmp_path)
    assert state is not None and (state.state, state.percent) == ("ready", 100)


def test_the_launcher_starts_the_build_with_a_progress_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a stand-in build script that reports through the variable the real one reads
    script = tmp_path / "build.sh"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'printf \'{"state": "building", "percent": 50, "step": "half"}\' '
        '> "$KEELSON_KUBE_PROGRESS"\n'
        "echo building\n"
    )
    monkeypatch.setattr(launcher, "BUILD_SCRIPT", script)

    process = launcher._start_kube_build(tmp_path, dict(os.environ))
    assert process.wait(timeout=30) == 0

    state = read_progress(tmp_path)
    assert state is not None and (state.state, state.percent, state.step) == (
        "building",
        50,
        "half",
    )
    assert "building" in (tmp_path / "kube-build.log").read_text()


def test_demo_fleet_off_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("off", "OFF", "0", "false", "no"):
        monkeypatch.setenv("KEELSON_DEMO_FLEET", value)
        assert launcher.env_bool("KEELSON_DEMO_FLEET", True) is False, value
    monkeypatch.setenv("KEELSON_DEMO_FLEET", "on")
    assert launcher.env_bool("KEELSON_DEMO_FLEET", True) is True
