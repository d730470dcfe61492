"""Settings: defaults, validation, and one clear line (never a traceback) from every process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flow_engine.settings import Settings, SettingsError, load

BIN = Path(sys.executable).parent


def test_defaults_follow_the_spec() -> None:
    settings = load({"FLOW_ENGINE_CONSUMER": "host-1"})
    assert settings == Settings(consumer="host-1")
    assert (settings.redis_url, settings.database_url, settings.group, settings.max_retries, settings.sched_poll_ms,
            settings.sched_zset, settings.wait_prefix, settings.metrics_port) == (
        "redis://localhost:6379/0", "sqlite:///flow_engine.db", "engine", 2, 500, "nf:incoming:scheduled",
        "fe:wait", None)


def test_conversation_control_defaults_and_values() -> None:
    assert (Settings.max_held, Settings.run_expire_min, Settings.interrupt_words, Settings.max_steps) == (
        50, 1440, "", 1000)
    settings = load({"FLOW_ENGINE_MAX_HELD": "5", "FLOW_ENGINE_RUN_EXPIRE_MIN": "60",
                     "FLOW_ENGINE_INTERRUPT_WORDS": "Menú, inicio", "FLOW_ENGINE_MAX_STEPS": "200"})
    assert (settings.max_held, settings.run_expire_min, settings.interrupt_words, settings.max_steps) == (
        5, 60, "Menú, inicio", 200)


def test_handoff_ttl_defaults_to_a_day_and_takes_fractions_of_a_minute() -> None:
    assert (Settings.handoff_ttl_min, load({}).handoff_ttl_min) == (1440, 1440)
    assert load({"FLOW_ENGINE_HANDOFF_TTL_MIN": "0.5"}).handoff_ttl_min == 0.5


def test_the_broker_defaults_to_redis_url_and_can_be_set_apart() -> None:
    assert load({"REDIS_URL": "redis://r:1/2"}).broker_url == "redis://r:1/2"
    assert load({"REDIS_URL": "redis://r:1/2", "CELERY_BROKER_URL": "amqp://q//"}).broker_url == "amqp://q//"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOW_ENGINE_MAX_RETRIES": "two"}, "FLOW_ENGINE_MAX_RETRIES='two': must be an integer"),
        ({"FLOW_ENGINE_MAX_RETRIES": "-1"}, "FLOW_ENGINE_MAX_RETRIES='-1': must be between 0 and 100"),
        ({"FLOW_ENGINE_SCHED_POLL_MS": "0"}, "FLOW_ENGINE_SCHED_POLL_MS='0': must be between 1 and 60000"),
        ({"FLOW_ENGINE_METRICS_PORT": "70000"}, "FLOW_ENGINE_METRICS_PORT='70000': must be between 1 and 65535"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379': must be a redis:// URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x': must be a SQLAlchemy URL for sqlite or "
                                        "postgresql (e.g. postgresql+psycopg2://user@host/db)"),
        ({"FLOW_ENGINE_GROUP_START": "now"}, "FLOW_ENGINE_GROUP_START='now': must be \"0\" or \"$\""),
        ({"FLOW_ENGINE_GROUP": "my group"}, "FLOW_ENGINE_GROUP='my group': must be a name without spaces"),
        ({"REDIS_URL": "redis://host/abc"}, "REDIS_URL='redis://host/abc': the database number must be an integer, "
                                            "got 'abc'"),
        ({"REDIS_URL": "redis://[::1"}, "REDIS_URL='redis://[::1': is not a valid URL (Invalid IPv6 URL)"),
        ({"REDIS_URL": "redis://host:port/0"}, "REDIS_URL='redis://host:port/0': is not a valid URL (Port could not "
                                               "be cast to integer value as 'port')"),
        ({"CELERY_BROKER_URL": "kafka://k"}, "CELERY_BROKER_URL='kafka://k': must be a broker URL (redis, rediss, "
                                             "sentinel, amqp, amqps, pyamqp, sqs)"),
        ({"CELERY_BROKER_URL": "redis://h/x"}, "CELERY_BROKER_URL='redis://h/x': the database number must be an "
                                               "integer, got 'x'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD': must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"FLOW_ENGINE_METRICS_ADDR": "everywhere"}, "FLOW_ENGINE_METRICS_ADDR='everywhere': must be an IP address "
                                                     "to listen on (127.0.0.1, 0.0.0.0, ::1)"),
        ({"FLOW_ENGINE_MAX_HELD": "-1"}, "FLOW_ENGINE_MAX_HELD='-1': must be between 0 and 10000"),
        ({"FLOW_ENGINE_RUN_EXPIRE_MIN": "0"}, "FLOW_ENGINE_RUN_EXPIRE_MIN='0': must be between 1 and 527040"),
        ({"FLOW_ENGINE_MAX_STEPS": "many"}, "FLOW_ENGINE_MAX_STEPS='many': must be an integer"),
        ({"FLOW_ENGINE_HANDOFF_TTL_MIN": "a day"}, "FLOW_ENGINE_HANDOFF_TTL_MIN='a day': must be a number"),
        ({"FLOW_ENGINE_HANDOFF_TTL_MIN": "0"}, "FLOW_ENGINE_HANDOFF_TTL_MIN='0': must be between 0.001 and 527040"),
        ({"FLOW_ENGINE_INTERRUPT_WORDS": "menu,,salir"},
         "FLOW_ENGINE_INTERRUPT_WORDS='menu,,salir': must be comma-separated words, e.g. menu,inicio,salir"),
    ],
)
def test_a_bad_value_names_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(env)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "argv",
    [[str(BIN / "celery"), "-A", "flow_engine", "worker"], [sys.executable, "-m", "bridge"],
     [str(BIN / "flow-engine"), "bridge"], [str(BIN / "flow-engine"), "scheduler"]],
    ids=["worker", "python -m bridge", "flow-engine bridge", "flow-engine scheduler"],
)
def test_every_process_stops_on_a_bad_setting_with_one_line(argv: list[str], tmp_path: Path) -> None:
    assert shutil.which(argv[0]), argv[0]
    env = {**os.environ, "FLOW_ENGINE_MAX_RETRIES": "lots"}
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "flow-engine: FLOW_ENGINE_MAX_RETRIES='lots': must be an integer\n"


@pytest.mark.parametrize(
    "argv",
    [[str(BIN / "celery"), "-A", "flow_engine", "worker", "-c", "1"], [sys.executable, "-m", "bridge"],
     [str(BIN / "flow-engine"), "scheduler"]],
    ids=["worker", "bridge", "scheduler"],
)
def test_every_process_stops_when_its_metrics_port_is_taken(argv: list[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "FLOW_ENGINE_METRICS_PORT": str(port), "REDIS_URL": "redis://127.0.0.1:1/0"}
        result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"flow-engine: FLOW_ENGINE_METRICS_PORT={port} (FLOW_ENGINE_METRICS_ADDR=127.0.0.1): Address already in use")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NLP_SERVICE_URL": "nlp:8000"}, "NLP_SERVICE_URL='nlp:8000': must be an http:// or https:// URL"),
        ({"NLP_TIMEOUT_SECONDS": "soon"}, "NLP_TIMEOUT_SECONDS='soon': must be a number"),
        ({"NLP_TIMEOUT_SECONDS": "0"}, "NLP_TIMEOUT_SECONDS='0': must be between 0.01 and 60"),
        ({"NLP_MIN_SCORE": "1.5"}, "NLP_MIN_SCORE='1.5': must be between 0 and 1"),
    ],
)
def test_a_bad_nlp_setting_names_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(env)
    assert str(raised.value) == message


def test_the_nlp_service_is_off_unless_its_url_is_set() -> None:
    assert (load({}).nlp_url, load({}).nlp_timeout_s, load({}).nlp_min_score) == (None, 1.5, 0.32)
    nlp = load({"NLP_SERVICE_URL": "http://nlp:8000", "NLP_TIMEOUT_SECONDS": "0.8", "NLP_MIN_SCORE": "0.5"})
    assert (nlp.nlp_url, nlp.nlp_timeout_s, nlp.nlp_min_score) == ("http://nlp:8000", 0.8, 0.5)
