"""The layout rules of issue 22 that no linter checks: mypy's strict list names modules
that exist, modules stay small, and settings come from the environment in one place."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 600
# Where the environment may be read while a module is imported: the typed readers and the
# settings built from them. Anything else reads a Django setting (or reads the environment
# inside a function, at run time: a command line's defaults).
ENV_READERS = {"fleet/env.py", "fleet/settings.py"}
_SKIPPED_DIRS = {".venv", "var", "build", "node_modules", "tests", "migrations", "static"}


def source_files() -> Iterator[Path]:
    """Every Python file of the project but tests and migrations."""
    for path in sorted(REPO.rglob("*.py")):
        parts = path.relative_to(REPO).parts
        if not any(part in _SKIPPED_DIRS or part.startswith(".") for part in parts[:-1]):
            yield path


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# --- mypy's strict overrides ---------------------------------------------------------------


def strict_patterns() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    overrides = config["tool"]["mypy"]["overrides"]
    strict = [o for o in overrides if o.get("disallow_untyped_defs")]
    assert len(strict) == 1, "one strict override list expected"
    module = strict[0]["module"]
    return [module] if isinstance(module, str) else list(module)


def pattern_problem(pattern: str, root: Path) -> str | None:
    """Why `pattern` (a mypy override module name) does not name what it should, if it
    does not: `a.b` must be a module file (a package name alone matches only its
    `__init__`, none of its modules), `a.b.*` a package holding modules."""
    if pattern.endswith(".*"):
        package = root.joinpath(*pattern[:-2].split("."))
        modules = [p for p in package.glob("**/*.py") if p.name != "__init__.py"]
        if not (package / "__init__.py").is_file() or not modules:
            return f"{pattern}: no package with modules at {_relative_to(package, root)}/"
        return None
    path = root.joinpath(*pattern.split("."))
    if (path / "__init__.py").is_file():
        return f"{pattern} is a package: the name matches only its __init__ (use {pattern}.*)"
    if not path.with_suffix(".py").is_file():
        return f"{pattern}: no module {_relative_to(path, root)}.py"
    return None


def _relative_to(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def test_pattern_check_tells_a_package_name_from_its_modules(tmp_path: Path) -> None:
    # given a package with a module, and a single module
    (tmp_path / "app" / "services").mkdir(parents=True)
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "services" / "__init__.py").write_text("")
    (tmp_path / "app" / "services" / "billing.py").write_text("")
    (tmp_path / "app" / "tasks.py").write_text("")
    # then modules and packages with .* pass; a bare package name, a typo, an empty one fail
    assert pattern_problem("app.tasks", tmp_path) is None
    assert pattern_problem("app.services.*", tmp_path) is None
    assert pattern_problem("app.services.billing", tmp_path) is None
    assert "only its __init__" in str(pattern_problem("app.services", tmp_path))
    assert "no module app/task.py" in str(pattern_problem("app.task", tmp_path))
    assert "no package" in str(pattern_problem("app.tasks.*", tmp_path))
    (tmp_path / "app" / "empty").mkdir()
    (tmp_path / "app" / "empty" / "__init__.py").write_text("")
    assert "no package" in str(pattern_problem("app.empty.*", tmp_path))


def test_every_strict_mypy_pattern_names_existing_modules() -> None:
    patterns = strict_patterns()
    assert "policies.services.*" in patterns  # the list is the one we think it is
    problems = [problem for p in patterns if (problem := pattern_problem(p, REPO))]
    assert problems == []


# --- module size --------------------------------------------------------------------------


def test_no_module_is_over_600_lines() -> None:
    sizes = {_relative(p): len(p.read_text().splitlines()) for p in source_files()}
    assert "policies/services/evaluation/run.py" in sizes  # the walk sees the packages
    assert "benchmarks/simulator/server.py" in sizes
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert too_long == {}, f"split these by concern (at most {MAX_LINES} lines a module)"


# --- environment reads at import time -----------------------------------------------------


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`: runs as a script only, never on import."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _import_time_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes evaluated when the module is imported: module and class bodies, and the
    decorators and default values of functions, but not function bodies."""
    pending: list[ast.AST] = [s for s in tree.body if not _is_main_guard(s)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending += node.decorator_list + node.args.defaults
            pending += [d for d in node.args.kw_defaults if d is not None]
            continue
        if isinstance(node, ast.Lambda):
            pending += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            continue
        yield node
        pending += list(ast.iter_child_nodes(node))


def _setdefault_of_settings_module(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """`os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)`: names the settings, reads none."""
    attribute = parents.get(node)
    call = parents.get(attribute) if attribute is not None else None
    return (
        isinstance(attribute, ast.Attribute)
        and attribute.attr == "setdefault"
        and isinstance(call, ast.Call)
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == "DJANGO_SETTINGS_MODULE"
    )


def import_time_env_reads(source: str) -> list[int]:
    """Lines where `source` reads the process environment while being imported."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    from_os = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name in {"environ", "getenv", "environb", "getenvb"}
    }
    lines = set()
    for node in _import_time_nodes(tree):
        named = (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in {"environ", "getenv", "environb", "getenvb"}
        ) or (isinstance(node, ast.Name) and node.id in from_os)
        if not named or _setdefault_of_settings_module(node, parents):
            continue
        holder = parents.get(node)
        if isinstance(holder, ast.Subscript) and isinstance(holder.ctx, ast.Store | ast.Del):
            continue  # a write
        lines.add(getattr(node, "lineno", 0))
    return sorted(lines)


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ('import os\nTIMEOUT = float(os.environ.get("T", "5"))\n', [2]),
        ('import os\nTIMEOUT = os.getenv("T")\n', [2]),
        ('from os import environ as env\nHOST = env["HOST"]\n', [2]),
        ('import os\nclass C:\n    debug = "DEBUG" in os.environ\n', [3]),
        ('import os\ndef f(x=os.environ.get("X")):\n    return x\n', [2]),
        ('import os\n@cache(os.getenv("SIZE"))\ndef f():\n    pass\n', [2]),
        ('import os\ndef f():\n    return os.environ.get("X")\n', []),
        ('import os\nf = lambda: os.environ["X"]\n', []),
        ('import os\nif __name__ == "__main__":\n    print(os.environ["X"])\n', []),
        ('import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")\n', []),
        ('import os\nos.environ.setdefault("SECRET", "x")\n', [2]),
        ('import os\nos.environ["X"] = "1"\n', []),
    ],
)
def test_import_time_env_reads_are_found(source: str, lines: list[int]) -> None:
    assert import_time_env_reads(source) == lines


def test_settings_are_read_from_the_environment_only_by_the_env_readers() -> None:
    offenders = {
        f"{_relative(path)}:{line}"
        for path in source_files()
        if _relative(path) not in ENV_READERS
        for line in import_time_env_reads(path.read_text())
    }
    assert offenders == set(), "read these through fleet/env.py into a Django setting"
