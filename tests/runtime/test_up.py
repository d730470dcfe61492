"""`flow-engine up`, the dev stack: the quick start's promises, Flower, summed metrics, restarts of a
dead child and a clean Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flow_engine.adapters.scripts import connect
from tests.conftest import EXAMPLE_FLOWS
from tests.devstack import free_port

FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")


class Up:
    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.proc = subprocess.Popen([FLOW_ENGINE, "up", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines[-60:]))

    def count(self, pattern: str) -> int:
        return sum(1 for line in list(self.lines) if re.search(pattern, line))


def get(url: str, auth: str | None = None) -> str:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        return str(response.read().decode())


def post_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of a POST (a browser page's form or fetch would send these headers)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", headers=headers, method="POST"),
                                    timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def flower_auth(stack: Up) -> str:
    """The generated Flower login that `flow-engine up` prints."""
    found = stack.wait_for(r"Flower on http://127\.0\.0\.1:\d+ \(user (\S+), password (\S+)\)")
    return f"{found.group(1)}:{found.group(2)}"


@pytest.fixture(scope="module")
def up(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, dict[str, str], int, int]]:
    connect(redis_url).flushdb()
    home = tmp_path_factory.mktemp("up")
    metrics_port, flower_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{home / 'fe.db'}",
           "FLOW_ENGINE_METRICS_PORT": str(metrics_port), "FLOW_ENGINE_CLAIM_IDLE_MS": "2000"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for args in (["db", "upgrade"], ["flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", "demo",
                                      "--activate", "--if-changed"]):
        subprocess.run([FLOW_ENGINE, *args], env=env, check=True, capture_output=True, timeout=60)
    stack = Up(env, ["-c", "2", "--flower-port", str(flower_port)])
    stack.wait_for(r"worker +\| .*celery@\S+ ready")
    stack.wait_for(r"bridge +\| .*bridge \S+ leads")
    yield stack, env, metrics_port, flower_port
    if stack.proc.poll() is None:
        os.killpg(stack.proc.pid, signal.SIGKILL)


def test_a_greeting_within_a_second_and_the_second_line_after_the_delay(
    up: tuple[Up, dict[str, str], int, int],
) -> None:
    _stack, env, metrics_port, flower_port = up
    client = connect(env["REDIS_URL"])
    sent = subprocess.run([FLOW_ENGINE, "send", "--org", "demo", "--from", "5215550001", "--name", "Ana", "hola"],
                          env=env, capture_output=True, text=True, check=True, timeout=30)
    sent_ms = int(sent.stdout.split()[1].split("-")[0])
    deadline = time.monotonic() + 5
    while client.xlen("nf:outbox") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = client.xrange("nf:outbox")
    assert [fields["text"] for _id, fields in entries] == [
        "¡Hola Ana! Bienvenido a la tienda.", "¿Quieres ver el catálogo o hablar con un asesor?"]
    first_ms, second_ms = (int(entry_id.split("-")[0]) for entry_id, _fields in entries)
    assert first_ms - sent_ms < 1000
    assert 1400 <= second_ms - first_ms <= 1700
    metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")  # summed over bridge, timer loop and worker
    assert "nexia_engine_incoming_processed_total 1.0" in metrics  # the message (its delay's resume is a timer)
    assert "nexia_engine_outbox_published_total 2.0" in metrics
    assert "nexia_engine_handed_on_total 2.0" in metrics
    assert "nexia_engine_sched_published_total 1.0" in metrics
    assert 'nexia_engine_runs_total{status="running"} 1.0' in metrics  # the run started...
    assert 'nexia_engine_runs_total{status="completed"} 1.0' in metrics  # ...and completed after its delay
    assert "nexia_engine_worker_up 1.0" in metrics
    time.sleep(1.5)  # Flower learns of tasks from the worker's events
    tasks = json.loads(get(f"http://127.0.0.1:{flower_port}/api/tasks", auth=flower_auth(_stack)))
    assert {task["name"] for task in tasks.values()} == {"flow_engine.process_lane"}
    assert all(task["args"].startswith("lane ") for task in tasks.values())


def test_flower_asks_for_a_password_and_refuses_cross_site_requests(
    up: tuple[Up, dict[str, str], int, int],
) -> None:
    stack, env, metrics_port, flower_port = up
    stack.wait_for(rf"metrics on http://127\.0\.0\.1:{metrics_port}/metrics")
    worker = stack.wait_for(r"worker +\| .*(celery@\S+) ready").group(1)
    shutdown = f"http://127.0.0.1:{flower_port}/api/worker/shutdown/{worker}"
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    basic = {"Authorization": "Basic " + base64.b64encode(flower_auth(stack).encode()).decode()}
    assert post_status(shutdown, {}) == 401  # no password
    assert post_status(shutdown, evil) == 403  # any web page the developer opens
    assert post_status(shutdown, {**evil, **basic}) == 403  # even with the browser's cached login
    assert post_status(shutdown, {"Origin": "http://evil.example", **basic}) == 403  # no fetch metadata
    sent = subprocess.run([FLOW_ENGINE, "send", "--org", "demo", "--from", "5215550009", "hola"], env=env,
                          capture_output=True, check=True, timeout=30)
    assert sent.returncode == 0
    client = connect(env["REDIS_URL"])
    deadline = time.monotonic() + 10
    while not any(f["to"] == "5215550009" for _id, f in client.xrange("nf:outbox")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(f["to"] == "5215550009" for _id, f in client.xrange("nf:outbox"))  # the worker still answers
    assert stack.count(r"worker +\| .*(shutdown|Warm shutdown)") == 0


def test_a_child_that_dies_is_reported_and_restarted(up: tuple[Up, dict[str, str], int, int]) -> None:
    stack = up[0]
    pid = int(stack.wait_for(r"scheduler +\| started \(pid (\d+)\)").group(1))
    os.kill(pid, signal.SIGKILL)
    stack.wait_for(r"scheduler +\| .*exited with code -9; restarting in 1 s")
    deadline = time.monotonic() + 10
    while stack.count(r"scheduler +\| started \(pid") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.count(r"scheduler +\| started \(pid") == 2


def test_ctrl_c_stops_every_child_within_10_seconds(up: tuple[Up, dict[str, str], int, int]) -> None:
    stack = up[0]
    pids = [int(m) for line in list(stack.lines) for m in re.findall(r"\| started \(pid (\d+)\)", line)]
    started = time.monotonic()
    os.killpg(stack.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert stack.proc.wait(timeout=12) == 0
    assert time.monotonic() - started < 10
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert alive == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM], ids=["SIGKILL", "SIGHUP", "SIGTERM"])
def test_no_child_outlives_the_supervisor(sig: int, redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'fe.db'}"}
    env.pop("FLOW_ENGINE_METRICS_PORT", None)
    subprocess.run([FLOW_ENGINE, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    stack = Up(env, ["-c", "1", "--no-flower"])
    try:
        stack.wait_for(r"worker +\| .*celery@\S+ ready")
        pids = [int(m) for line in list(stack.lines) for m in re.findall(r"\| started \(pid (\d+)\)", line)]
        assert len(pids) == 3  # bridge, timer loop, worker
        os.kill(stack.proc.pid, sig)  # the supervisor alone, as a closed terminal or `kill -9` does
        stack.proc.wait(timeout=15)
        deadline = time.monotonic() + 15
        while (alive := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive == []
    finally:
        if stack.proc.poll() is None:
            os.killpg(stack.proc.pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
