"""docker-compose.yml, Procfile and compose.env: no Docker engine runs here, so every command they
name is run with --help against this install, and the file's structure is checked."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import prometheus_client.metrics
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


# -- Grafana dashboard and Prometheus alerts (deploy/) -------------------------------------------------

DEPLOY = REPO / "deploy"
DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "flow-engine.json").read_text())
ALERTS: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
METRIC = re.compile(r"\bnexia_engine_[a-z0-9_]+")


def exposed_names() -> set[str]:
    """Every series name the engine's metrics expose (counters' _total, histograms' _bucket, ...)."""
    from flow_engine import metrics

    names = set()
    for value in vars(metrics).values():
        if isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            for family in value.collect():
                names |= {sample.name for sample in family.samples}
                names.add(family.name)
                if family.type == "counter":
                    names.add(family.name + "_total")
                if family.type == "histogram":
                    names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    return names


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_shows_what_operators_watch_with_metrics_that_exist() -> None:
    titles = {panel["title"] for panel in DASHBOARD["panels"]}
    assert {"Messages / s", "Latency, inbound to outbox", "Backlog", "Lanes", "Timer lateness (due to published)",
            "DLQ by error", "Ignored events by reason / s", "Runs by status / s"} <= titles
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used and used <= exposed_names(), sorted(used - exposed_names())
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert all(target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
               for panel in DASHBOARD["panels"] for target in panel.get("targets", []))


def test_the_alert_rules_use_metrics_that_exist() -> None:
    rules = [rule for group in ALERTS["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == {"FlowEngineDLQGrowing", "FlowEngineBacklogGrowing",
                                                 "FlowEngineTimerLate", "FlowEngineNoBridge", "FlowEngineNoWorker"}
    used = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    assert used <= exposed_names(), sorted(used - exposed_names())


def promtool() -> str:
    """promtool's path. Missing is a failure, not a skip (`make test` installs it: scripts/ensure-tools.sh)."""
    found = shutil.which("promtool")
    assert found, "promtool is not installed: run `make tools` (Debian: apt-get install prometheus)"
    return found


def test_the_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    where = DEPLOY / "prometheus"
    checked = subprocess.run([promtool(), "check", "rules", "alerts.yml"], cwd=where, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=where, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr
