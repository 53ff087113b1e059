"""Fetching a repository with the `git` command line: shallow (`--depth 1`), one ref (or
one earlier commit of it, for a rollback), with a timeout, never prompting. Credentials
reach git through its environment (an `http.extraHeader` for a token, `GIT_SSH_COMMAND`
with a key file for SSH), never on the command line, and are scrubbed from any message
git prints."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core import egress

# Transports git may use, also for submodules and redirects: no file://, no ext::.
ALLOWED_PROTOCOLS = "https:ssh:git"
_SCHEME_URL = re.compile(r"^(https|ssh|git)://[^\s/]+(/\S*)?$")
_SCP_URL = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
FETCH_TIMEOUT = 120
MAX_MESSAGE = 500


class GitError(Exception):
    """Git failed: unreachable, refused, unknown ref, timed out. The message quotes no
    credential."""


def url_errors(url: str) -> list[str]:
    """Why `url` cannot be fetched from ([] when it can)."""
    if _SCP_URL.match(url):
        return []
    if not _SCHEME_URL.match(url):
        return ["Use an https://, ssh://, git:// or user@host:path URL."]
    authority = url.split("://", 1)[1].split("/", 1)[0]
    if url.startswith("https://") and ":" in authority.split("@")[0] and "@" in authority:
        return ["Put the password or token in the credentials, not in the URL."]
    return []


def ref_errors(ref: str) -> list[str]:
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/")):
        return ["Use a branch or tag name."]
    return []


def path_errors(path: str) -> list[str]:
    parts = Path(path).parts
    if path.startswith("/") or ".." in parts or "\\" in path:
        return ["Use a folder relative to the repository's root."]
    return []


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = re.sub(r"(Authorization:\s*\w+\s+)\S+", r"\1[redacted]", text, flags=re.IGNORECASE)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-5:])[:MAX_MESSAGE]


def _run(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: int, secrets: list[str]
) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {timeout} s.") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_scrub(done.stderr, secrets) or done.returncode}")
    return done.stdout


def _environment(
    credentials: str, scratch: Path, ca_file: str = ""
) -> tuple[dict[str, str], list[str]]:
    """git's environment: no prompt, no user or system configuration, allowed transports,
    and the credential. Returns it and the strings to scrub from messages."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "LANG": "C",
        # A redirect could lead past the egress check (egress_errors) to another host.
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.followRedirects",
        "GIT_CONFIG_VALUE_0": "false",
    }
    if ca_file:
        env["GIT_SSL_CAINFO"] = ca_file
    known_hosts = scratch / "known_hosts"
    ssh = (
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
        f"-o UserKnownHostsFile={known_hosts}"
    )
    secrets: list[str] = []
    if credentials.lstrip().startswith("-----BEGIN"):
        key = scratch / "id"
        key.write_text(credentials.strip() + "\n")
        key.chmod(0o600)
        ssh += f" -o IdentitiesOnly=yes -i {key}"
        secrets.append(credentials)
    elif credentials:
        user_pass = credentials if ":" in credentials else f"x-access-token:{credentials}"
        header = "Authorization: Basic " + base64.b64encode(user_pass.encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_1": "http.extraHeader",
                "GIT_CONFIG_VALUE_1": header,
            }
        )
        secrets += [credentials, header]
    env["GIT_SSH_COMMAND"] = ssh
    return env, secrets


_DEFAULT_PORTS = {"https": 443, "ssh": 22, "git": 9418}


def _endpoint(url: str) -> tuple[str, int]:
    """The host and port git will connect to for `url` (scp-like `user@host:path` is ssh)."""
    if _SCP_URL.match(url):
        return url.split("@", 1)[1].split(":", 1)[0], 22
    scheme, rest = url.split("://", 1)
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host, port = authority, _DEFAULT_PORTS[scheme]
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else port
    elif ":" in authority:
        host, _, number = authority.rpartition(":")
        port = int(number) if number.isdigit() else port
    return host, port


def egress_errors(url: str) -> list[str]:
    """Why the hub may not connect to `url`'s host (the egress policy cluster URLs and
    webhooks follow: link-local and metadata addresses never, loopback only where allowed,
    `KEELSON_CLUSTER_URL_ALLOWLIST` when set). Git resolves the name again when it
    connects; redirects are not followed (see `_run`)."""
    host, port = _endpoint(url)
    bracketed = f"[{host}]" if ":" in host else host
    try:
        egress.check_egress(f"https://{bracketed}:{port}/")
    except egress.EgressDenied as error:
        return [f"The hub may not connect to {host}: {error}"]
    return []


@contextmanager
def _session(
    *, url: str, ref: str, workdir: Path, credentials: str, ca_file: str
) -> Iterator[Callable[[list[str], int], str]]:
    """Check `url` and `ref`, make `workdir` a repository, and yield a runner of git
    commands in it with the credential's environment (removed when the block ends)."""
    problems = url_errors(url) + ref_errors(ref)
    if not problems:
        problems = egress_errors(url)
    if problems:
        raise GitError(" ".join(problems))
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keelson-git-") as scratch:
        env, secrets = _environment(credentials, Path(scratch), ca_file)

        def git(args: list[str], timeout: int) -> str:
            return _run(args, cwd=workdir, env=env, timeout=timeout, secrets=secrets)

        if not (workdir / ".git").exists():
            git(["init", "-q"], 30)
        yield git


def _checkout(git: Callable[[list[str], int], str], what: str) -> str:
    """Check out `what` (detached, nothing left over); its commit sha."""
    git(["checkout", "-q", "--force", "--detach", what], 60)
    git(["clean", "-q", "-d", "-x", "--force"], 60)
    return git(["rev-parse", "HEAD"], 30).strip()


def git_fetch(
    *,
    url: str,
    ref: str,
    workdir: Path,
    credentials: str = "",
    ca_file: str = "",
    timeout: int = FETCH_TIMEOUT,
) -> str:
    """Fetch the tip of `ref` (depth 1) into `workdir` and check it out; its commit sha."""
    session = _session(url=url, ref=ref, workdir=workdir, credentials=credentials, ca_file=ca_file)
    with session as git:
        git(["fetch", "-q", "--depth", "1", "--no-tags", url, ref], timeout)
        return _checkout(git, "FETCH_HEAD")


def git_fetch_commit(
    *,
    url: str,
    ref: str,
    commit: str,
    workdir: Path,
    credentials: str = "",
    ca_file: str = "",
    timeout: int = FETCH_TIMEOUT,
) -> str:
    """Fetch `commit` (a full sha from `ref`'s history) into `workdir` and check it out.

    First by its sha at depth 1: servers speaking protocol v2 (git 2.18 and later, GitHub,
    GitLab) hand out any commit they hold; a protocol v0 server refuses a sha no ref
    points at unless `uploadpack.allowReachableSHA1InWant` is on. Then the whole history
    of `ref`, where the commit must be (it is not after a force-push rewrote it)."""
    if not _SHA.match(commit):
        raise GitError("Use a full commit sha (40 hex digits).")
    session = _session(url=url, ref=ref, workdir=workdir, credentials=credentials, ca_file=ca_file)
    with session as git:
        try:
            git(["fetch", "-q", "--depth", "1", "--no-tags", url, commit], timeout)
        except GitError:
            deeper = ["--unshallow"] if (workdir / ".git" / "shallow").exists() else []
            git(["fetch", "-q", *deeper, "--no-tags", url, ref], timeout)
            try:
                git(["cat-file", "-e", f"{commit}^{{commit}}"], 30)
            except GitError:
                raise GitError(f"Commit {commit[:7]} is not in the history of {ref}.") from None
        return _checkout(git, commit)
