"""`flow-engine up`: the dev stack in the foreground — bridge, timer loop, a worker and Flower — with
prefixed, coloured output per process. Ctrl-C stops every child within 10 s; a child that dies is
reported and restarted with backoff. /metrics (FLOW_ENGINE_METRICS_PORT) sums all processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import click

STOP_TIMEOUT_S = 8.0  # SIGTERM, then SIGKILL: everything is gone within 10 s of Ctrl-C
MAX_BACKOFF_S = 30.0
COLORS = ("cyan", "magenta", "yellow", "green", "blue")


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    color: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = 1.0
    restart_at: float | None = None
    readers: list[threading.Thread] = field(default_factory=list)


def dev_stack(concurrency: int, flower: bool, flower_port: int, events: bool) -> list[Child]:
    python = sys.executable
    worker = [python, "-m", "celery", "-A", "flow_engine", "worker", "-c", str(concurrency), "--loglevel=INFO"]
    if events:
        worker.append("-E")  # task events for Flower's live view: costs throughput (README: Flower)
    specs = [("bridge", [python, "-m", "bridge"]), ("scheduler", [python, "-m", "flow_engine", "scheduler"]),
             ("worker", worker)]
    if flower:
        specs.append(("flower", [python, "-m", "celery", "-A", "flow_engine", "flower", f"--port={flower_port}",
                                 "--address=127.0.0.1"]))
    return [Child(name, argv, COLORS[i % len(COLORS)]) for i, (name, argv) in enumerate(specs)]


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str]) -> None:
        self.children = children
        self.env = env
        self.width = max(len(c.name) for c in children)
        self.stopping = threading.Event()
        self.print_lock = threading.Lock()

    def say(self, child: Child, line: str) -> None:
        prefix = click.style(f"{child.name:<{self.width}} |", fg=child.color, bold=True)
        with self.print_lock:
            click.echo(f"{prefix} {line}")

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        child.started_at = time.monotonic()
        child.restart_at = None
        reader = threading.Thread(target=self._pump, args=(child, child.proc.stdout), daemon=True)
        reader.start()
        child.readers = [reader]
        self.say(child, f"started (pid {child.proc.pid})")

    def _pump(self, child: Child, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self.say(child, raw.decode(errors="replace").rstrip())

    def run(self) -> int:
        for child in self.children:
            self.start(child)
        while not self.stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None and child.restart_at is None:
                    if now - child.started_at > MAX_BACKOFF_S:
                        child.backoff_s = 1.0  # it ran a while: start again quickly
                    self.say(child, click.style(f"exited with code {code}; restarting in {child.backoff_s:.0f} s",
                                                fg="red"))
                    child.restart_at = now + child.backoff_s
                    child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)
                elif child.restart_at is not None and now >= child.restart_at:
                    self.start(child)
            self.stopping.wait(0.2)
        return self.shutdown()

    def shutdown(self) -> int:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            assert child.proc is not None
            self.say(child, "stopping")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.say(child, "did not stop in time: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        for child in self.children:
            for reader in child.readers:
                reader.join(timeout=1)
        return 0


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies (even SIGKILL), so
    no bridge or worker is left running in the background holding the ports (Linux prctl)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def up(concurrency: int, flower: bool, flower_port: int, events: bool) -> int:
    """Run the dev stack until Ctrl-C or SIGTERM."""
    from flow_engine import metrics_dir, settings

    conf = settings.get()
    metrics_dir.use()  # every child counts into one directory; this process serves the sum
    # Flower always asks for a password: any web page the developer opens could otherwise drive its
    # API (shut the worker down). With basic auth Flower also refuses cross-site requests.
    generated = not os.environ.get("FLOWER_BASIC_AUTH")
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or f"flower:{secrets.token_urlsafe(12)}"
    env = {**os.environ, "FLOWER_BASIC_AUTH": flower_auth, "PYTHONUNBUFFERED": "1"}
    env.setdefault("LOG_FORMAT", "console")  # read on a terminal: one short line per record
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env.pop("FLOW_ENGINE_METRICS_PORT", None)
    supervisor = Supervisor(dev_stack(concurrency, flower, flower_port, events), env)
    if conf.metrics_port is not None:
        from flow_engine import metrics

        metrics.serve_or_exit(conf.metrics_port, conf.metrics_addr)
        click.echo(f"metrics on http://{conf.metrics_addr}:{conf.metrics_port}/metrics")
    if flower:
        user, _, password = flower_auth.partition(",")[0].partition(":")
        shown = f"user {user}, password {password}" if generated else f"user {user}, password from FLOWER_BASIC_AUTH"
        click.echo(f"Flower on http://127.0.0.1:{flower_port} ({shown})")

    def stop(_signum: int, _frame: object) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # the terminal was closed: stop the children as on Ctrl-C
    return supervisor.run()
