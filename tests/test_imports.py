"""Importing a module does nothing: no file, no directory, no environment change (DESIGN §5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Every module of the package and the bridge, but the entry points (`python -m`) and Alembic's env.py.
IMPORT_ALL = """
import os, pkgutil, importlib, flow_engine, bridge
before = dict(os.environ)
for package in (flow_engine, bridge):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith("__main__") or ".migrations" in info.name:
            continue
        importlib.import_module(info.name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
assert not changed, f"importing changed the environment: {changed}"
"""


def run_in_empty_dirs(tmp_path: Path, argv: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Run `argv` with an empty working directory and an empty TMPDIR; returns what it left in them."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "FLOW_ENGINE_METRICS_PORT": "9199", "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path not in (cwd, tmp))
    return left, done


def test_importing_the_celery_app_creates_no_file(tmp_path: Path) -> None:
    left, done = run_in_empty_dirs(tmp_path, [sys.executable, "-X", "importtime", "-c", "import flow_engine.celery"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert left == []


def test_importing_any_module_creates_no_file_and_changes_no_environment(tmp_path: Path) -> None:
    left, done = run_in_empty_dirs(tmp_path, [sys.executable, "-c", IMPORT_ALL])
    assert done.returncode == 0, done.stderr[-2000:]
    assert left == []
