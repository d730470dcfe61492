"""docker-compose.yml, Procfile and compose.env: no Docker engine runs here, so every command they
name is run with --help against this install, and the file's structure is checked."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_engine.settings import load
from tests.conftest import REPO

BIN = Path(sys.executable).parent
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ENGINE = ("migrate", "worker", "bridge", "scheduler", "flower")


def project_argv(command: list[str] | str) -> list[str] | None:
    """The command with this install's executables, or None when it is not one of the project's."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[0] == "CMD-SHELL":
        argv = shlex.split(argv[1])
    elif argv[0] == "CMD":
        argv = argv[1:]
    if argv[0] == "flow-engine" or argv[:3] == ["celery", "-A", "flow_engine"]:
        return [str(BIN / argv[0]), *argv[1:]]
    if argv[:3] == ["python", "-m", "bridge"]:
        return [sys.executable, *argv[1:]]
    return None


def help_of(argv: list[str]) -> subprocess.CompletedProcess[str]:
    if "-d" in argv:  # `inspect ping -d celery@$HOSTNAME` names a container; --help does not need it
        i = argv.index("-d")
        argv = argv[:i] + argv[i + 2 :]
    return subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_stack_has_every_service_with_a_healthcheck() -> None:
    assert set(SERVICES) == {"redis", "postgres", "migrate", "worker", "bridge", "scheduler", "flower"}
    assert all("healthcheck" in service for service in SERVICES.values())
    assert SERVICES["redis"]["command"] == ["redis-server", "--appendonly", "yes", "--maxmemory-policy", "noeviction"]
    assert SERVICES["flower"]["ports"] == ["127.0.0.1:5555:5555"]  # never on every interface


def test_flower_in_compose_asks_for_a_password() -> None:
    env = dict(line.split("=", 1) for line in (REPO / "compose.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["FLOWER_BASIC_AUTH"].count(":") == 1 and "FLOWER_UNAUTHENTICATED_API" not in env


@pytest.mark.parametrize("name", ["worker", "bridge", "scheduler", "flower"])
def test_engine_services_wait_for_healthy_stores_and_the_migration(name: str) -> None:
    service = SERVICES[name]
    assert service["depends_on"] == {"redis": {"condition": "service_healthy"},
                                     "postgres": {"condition": "service_healthy"},
                                     "migrate": {"condition": "service_completed_successfully"}}
    assert service["env_file"] == "compose.env"
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", ENGINE)
def test_each_service_command_is_a_real_entry_point(name: str) -> None:
    argv = project_argv(SERVICES[name]["command"])
    assert argv is not None, f"{name} runs something that is not this project"
    result = help_of(argv)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout or "usage:" in result.stdout


@pytest.mark.parametrize("name", ["migrate", "worker", "bridge", "scheduler"])
def test_each_project_healthcheck_is_a_real_entry_point(name: str) -> None:
    argv = project_argv(SERVICES[name]["healthcheck"]["test"])
    assert argv is not None
    assert help_of(argv).returncode == 0


def test_the_procfile_names_the_same_processes() -> None:
    lines = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"worker", "bridge", "scheduler", "flower"}
    for command in lines.values():
        argv = project_argv(command)
        assert argv is not None and help_of(argv).returncode == 0, command


def test_the_env_file_is_valid_settings() -> None:
    env = dict(line.split("=", 1) for line in (REPO / "compose.env").read_text().splitlines()
               if line.strip() and not line.startswith("#"))
    settings = load(env)
    assert (settings.redis_url, settings.metrics_port) == ("redis://redis:6379/0", 9108)
    assert settings.database_url.startswith("postgresql+psycopg2://")
