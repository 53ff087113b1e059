"""An Application's manifests by path in the repository's checkout: `manifests: {path: P}`
(a YAML file, or every YAML file under a folder, sorted) or `kustomize: {path: P}`
(`kubectl kustomize P`). Paths are relative to the repository's root and must stay inside
the checkout (no `..` or symbolic link out of it). Kustomize runs without network: every
base, component and file a kustomization names (recursively) must be a file or folder of
the checkout, so remote bases (URLs) are refused before kubectl runs; kubectl runs with a
timeout, an empty environment and, where the kernel allows it, in a namespace with no
network."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError

from kube.safeyaml import shorten

SUFFIXES = (".yaml", ".yml")
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MAX_BYTES = 5_000_000
# Keys of a kustomization that name other folders or files (lists of strings).
LISTED = (
    "resources",
    "bases",
    "components",
    "crds",
    "patchesStrategicMerge",
    "transformers",
    "generators",
    "validators",
    "configurations",
)
# Lists of objects whose `path` names a file.
WITH_PATH = ("patches", "patchesJson6902", "replacements")
GENERATORS = ("configMapGenerator", "secretGenerator")
REMOTE = ("git@", "github.com/", "gitlab.com/", "bitbucket.org/")


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _inside(root: Path, path: Any, field: str, base: Path | None = None) -> Path:
    """`path` (relative to `base`, by default the checkout's root) resolved, symbolic links
    followed, if it stays inside the checkout."""
    if not isinstance(path, str) or not path.strip():
        raise _fail(field, "Use a path relative to the repository's root.")
    if Path(path).is_absolute():
        raise _fail(field, f"{path}: use a path relative to the repository's root.")
    resolved = ((base or root) / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise _fail(field, f"{path}: outside the repository checkout.")
    if not resolved.exists():
        raise _fail(field, f"{path}: no such file or folder in the repository.")
    return resolved


def _path_of(value: Any, field: str) -> Any:
    if not isinstance(value, dict) or set(value) != {"path"}:
        raise _fail(field, 'Use {path: "folder/or/file.yaml"}.')
    return value["path"]


def manifests_at(root: Path, value: Any) -> str:
    """`manifests: {path: P}`: the YAML file P, or every YAML file under the folder P (sorted,
    hidden entries and symbolic links skipped), as one multi-document text."""
    field = "spec.manifests.path"
    found = _inside(root, _path_of(value, "spec.manifests"), field)
    if found.is_file():
        files = [found]
    else:
        files = [
            p
            for p in sorted(found.rglob("*"))
            if p.suffix in SUFFIXES
            and p.is_file()
            and not p.is_symlink()
            and not any(part.startswith(".") for part in p.relative_to(found).parts)
        ]
    if not files:
        raise _fail(field, f"{value['path']}: no YAML files there.")
    if sum(p.stat().st_size for p in files) > MAX_BYTES:
        raise _fail(field, f"{value['path']}: more than {MAX_BYTES:,} bytes of YAML.")
    texts = [p.read_text(encoding="utf-8", errors="replace").strip("\n") for p in files]
    return "\n---\n".join(texts) + "\n"


def _named(kustomization: dict[str, Any]) -> list[str]:
    """Every folder or file a kustomization names."""
    names: list[Any] = []
    for key in LISTED:
        names += [v for v in kustomization.get(key) or [] if not _inline(v)]
    for key in WITH_PATH:
        names += [
            v["path"] for v in kustomization.get(key) or [] if isinstance(v, dict) and "path" in v
        ]
    for key in GENERATORS:
        for generator in kustomization.get(key) or []:
            if isinstance(generator, dict):
                for entry in [*(generator.get("files") or []), *(generator.get("envs") or [])]:
                    names.append(str(entry).partition("=")[2] or entry)
                if generator.get("env"):
                    names.append(generator["env"])
    if isinstance(kustomization.get("openapi"), dict) and "path" in kustomization["openapi"]:
        names.append(kustomization["openapi"]["path"])
    return [str(name) for name in names]


def _inline(value: Any) -> bool:
    """An inline patch or plugin configuration, not a path."""
    return isinstance(value, dict) or (isinstance(value, str) and "\n" in value)


def _check_kustomization(root: Path, folder: Path, seen: set[Path]) -> None:
    field = "spec.kustomize.path"
    if folder in seen:
        return
    seen.add(folder)
    where = folder.relative_to(root.resolve()).as_posix() or "."
    file = next((folder / n for n in KUSTOMIZATIONS if (folder / n).is_file()), None)
    if file is None:
        raise _fail(field, f"{where}: no kustomization.yaml there.")
    try:
        kustomization = yaml.safe_load(file.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as error:
        raise _fail(field, f"{where}/{file.name}: not YAML: {shorten(str(error))}") from None
    if not isinstance(kustomization, dict):
        raise _fail(field, f"{where}/{file.name}: not a mapping.")
    if kustomization.get("helmCharts") or kustomization.get("helmGlobals"):
        raise _fail(field, f"{where}/{file.name}: Helm charts are not rendered.")
    for name in _named(kustomization):
        if "://" in name or name.startswith(REMOTE) or "?ref=" in name:
            raise _fail(
                field,
                f"{where}/{file.name}: {name}: remote bases are refused; vendor it into the "
                "repository",
            )
        try:
            found = _inside(root, name, field, base=folder)
        except ValidationError as error:
            raise _fail(field, f"{where}/{file.name}: {error.messages[0]}") from None
        if found.is_dir():
            _check_kustomization(root, found, seen)


@functools.cache
def _no_network() -> list[str]:
    """`unshare --net --map-root-user` where this kernel lets an ordinary user do it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    return [unshare, "--net", "--map-root-user"] if probe.returncode == 0 else []


def kubectl_binary() -> str:
    configured = str(settings.KEELSON_KUBECTL)
    found = shutil.which(configured)
    if found is None:
        raise _fail(
            "spec.kustomize",
            f"kubectl not found (KEELSON_KUBECTL={configured}); Kustomize cannot be rendered.",
        )
    return found


def kustomize_build(root: Path, value: Any) -> str:
    """`kustomize: {path: P}`: `kubectl kustomize P`, after checking every base and file it
    names is in the checkout."""
    field = "spec.kustomize.path"
    folder = _inside(root, _path_of(value, "spec.kustomize"), field)
    if not folder.is_dir():
        raise _fail(field, f"{value['path']}: not a folder.")
    _check_kustomization(root, folder, set())
    kubectl = kubectl_binary()
    with tempfile.TemporaryDirectory(prefix="kustomize-") as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        try:
            done = subprocess.run(
                [*_no_network(), kubectl, "kustomize", str(folder)],
                capture_output=True,
                text=True,
                env=env,
                cwd=home,
                timeout=settings.KEELSON_KUSTOMIZE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _fail(
                field,
                f"{value['path']}: kubectl kustomize took over "
                f"{settings.KEELSON_KUSTOMIZE_TIMEOUT} s.",
            ) from None
    if done.returncode != 0:
        message = done.stderr.strip().replace(str(root.resolve()) + "/", "")
        raise _fail(field, f"{value['path']}: kubectl kustomize failed: {shorten(message)}")
    if len(done.stdout) > MAX_BYTES:
        raise _fail(field, f"{value['path']}: renders more than {MAX_BYTES:,} bytes.")
    return done.stdout


def rendered_manifests(spec: dict[str, Any], root: Path | None) -> str | None:
    """The manifests text of an application declared by path, or None for inline ones."""
    by_path = isinstance(spec.get("manifests"), dict)
    if "kustomize" not in spec and not by_path:
        return None
    if "kustomize" in spec and "manifests" in spec:
        raise _fail("spec.kustomize", "Declare manifests or kustomize, not both.")
    if root is None:
        raise _fail("spec.manifests", "Manifests by path need the repository's checkout.")
    if by_path:
        return manifests_at(root, spec["manifests"])
    return kustomize_build(root, spec["kustomize"])
