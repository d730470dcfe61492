"""The "memory" benchmark: peak RSS of each engine process during the throughput run.

`RssSampler` watches a Stack's processes and their children (the Celery worker's prefork children)
on a thread, every 0.1 s. A process's peak is the larger of the highest RSS sampled and its VmHWM
(the kernel's own high-water mark of resident memory, so a peak between two samples is not missed).
RSS counts pages shared with other processes (a prefork child shares the pages it inherited from the
worker's main process); the proportional share (Pss) is recorded too, at the last sample.

On Linux everything is read from /proc/<pid> (status, task/*/children, smaps_rollup): the sampler
runs on the cores the engine is measured on, and psutil's `children()` reads the stat file of every
process of the machine, about 4 ms a call here, which took CPU from the engine during the timed
window. Elsewhere psutil is used, and the sampled RSS alone is the peak (no VmHWM).

The benchmark itself takes the peaks recorded by the "throughput" benchmark when it ran in this
invocation (`python -m bench` runs it first and hands its result on); run alone (`python -m bench
memory`), it runs one throughput round itself. Target: every worker process (main and prefork
children) <= 150 MB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from tests.devstack import Stack

TARGET_WORKER_MB = 150.0


PROC = Path("/proc")


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in kB ({} once it has exited)."""
    if not PROC.is_dir():
        try:
            return {"VmRSS": psutil.Process(pid).memory_info().rss // 1024}
        except psutil.Error:
            return {}
    found = {}
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return found


def _pss_kb(pid: int) -> int | None:
    try:
        pss: int = psutil.Process(pid).memory_full_info().pss
    except (psutil.Error, AttributeError):  # AttributeError: no Pss on this platform
        return None
    return pss // 1024


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (of any of its threads)."""
    found: set[int] = set()
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            try:
                found.update(int(child) for child in (task / "children").read_text().split())
            except FileNotFoundError:  # no /proc, or a kernel without task/*/children
                return _psutil_children(pid)
            except OSError:  # the thread has exited
                continue
    except FileNotFoundError:
        return _psutil_children(pid) if not PROC.is_dir() else []  # else: the process has exited
    except OSError:
        return []
    return sorted(found)


def _psutil_children(pid: int) -> list[int]:
    try:
        return sorted(child.pid for child in psutil.Process(pid).children())
    except psutil.Error:
        return []


@dataclass
class Peak:
    """What was seen of one process."""

    pid: int
    role: str  # "bridge", "scheduler", "worker main", "worker child", "flower", ...
    rss_kb: int = 0  # highest VmRSS sampled
    hwm_kb: int = 0  # VmHWM at the last sample
    pss_kb: int | None = None  # Pss at the last sample
    samples: int = 0

    @property
    def peak_mb(self) -> float:
        return max(self.rss_kb, self.hwm_kb) / 1024


@dataclass
class RssSampler:
    """Samples the peak RSS of every process of `stack` (and their children) while in use as a context."""

    stack: Stack
    interval_s: float = 0.1
    peaks: dict[str, Peak] = field(default_factory=dict)  # label ("worker0", "worker0.child2", ...) -> peak
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (a last sample, with Pss, first); idempotent."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample(pss=True)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self, pss: bool = False) -> None:
        for name, process in list(self.stack.processes.items()):
            if process.proc is None or process.proc.poll() is not None:
                continue
            root = process.proc.pid
            kind = name.rstrip("0123456789")
            self._record(name, root, f"{kind} main" if kind == "worker" else kind, pss)
            for child in _children(root):
                label = next((k for k, p in self.peaks.items() if p.pid == child), None)
                if label is None:
                    label = f"{name}.child{sum(1 for k in self.peaks if k.startswith(name + '.')) + 1}"
                self._record(label, child, f"{kind} child", pss)

    def _record(self, label: str, pid: int, role: str, pss: bool) -> None:
        status = _status_kb(pid)
        if not status:
            return
        peak = self.peaks.get(label)
        if peak is None or peak.pid != pid:  # a restarted process: a new entry under a new label
            if peak is not None:
                label = f"{label}#{pid}"
            peak = self.peaks.setdefault(label, Peak(pid, role))
        peak.rss_kb = max(peak.rss_kb, status.get("VmRSS", 0))
        peak.hwm_kb = max(peak.hwm_kb, status.get("VmHWM", 0))
        peak.samples += 1
        if pss:
            peak.pss_kb = _pss_kb(pid)

    def report(self) -> dict[str, dict[str, Any]]:
        return {label: {"pid": p.pid, "role": p.role, "peak_mb": round(p.peak_mb, 1),
                        "rss_sampled_max_mb": round(p.rss_kb / 1024, 1), "vm_hwm_mb": round(p.hwm_kb / 1024, 1),
                        "pss_at_end_mb": None if p.pss_kb is None else round(p.pss_kb / 1024, 1),
                        "samples": p.samples}
                for label, p in sorted(self.peaks.items())}


def merge(reports: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The highest peak of each label over several runs (each on its own stack)."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for label, entry in report.items():
            if label not in merged or entry["peak_mb"] > merged[label]["peak_mb"]:
                merged[label] = entry
    return merged


def by_role(report: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Role -> highest peak MB of the processes in that role."""
    roles: dict[str, float] = {}
    for entry in report.values():
        roles[entry["role"]] = max(roles.get(entry["role"], 0.0), entry["peak_mb"])
    return roles


def verdict(report: dict[str, dict[str, Any]], messages: int, rounds: int) -> dict[str, Any]:
    """The benchmark result for peaks sampled during `rounds` throughput rounds of `messages` messages."""
    workers = {label: e["peak_mb"] for label, e in report.items() if e["role"].startswith("worker")}
    roles = by_role(report)
    if not workers:
        return {"summary": "memory: no worker process sampled SKIPPED", "passed": True, "processes": report}
    worst = max(workers.values())
    passed = worst <= TARGET_WORKER_MB
    children = sorted(e["peak_mb"] for e in report.values() if e["role"] == "worker child")
    parts = [f"{role} {mb:.0f} MB" for role, mb in sorted(roles.items()) if role != "worker child"]
    parts.append("worker children " + "/".join(f"{mb:.0f}" for mb in children) + " MB")
    summary = (f"memory: peak RSS during throughput ({rounds} round(s) x {messages:,} msgs): {', '.join(parts)} | "
               f"largest worker process {worst:.0f} MB {'PASS' if passed else 'FAIL'} <= {TARGET_WORKER_MB:.0f} MB")
    return {"summary": summary, "passed": passed, "target_worker_mb": TARGET_WORKER_MB, "messages": messages,
            "rounds": rounds, "peak_mb_by_role": roles, "processes": report}


def run(throughput: dict[str, Any] | None = None) -> dict[str, Any]:
    """The verdict on the peaks of the "throughput" benchmark's result, or of one round run now."""
    if throughput is None or "peak_rss" not in throughput:
        from bench.stack import env_int
        from bench.throughput import throughput_round

        n = env_int("BENCH_MESSAGES", 50_000)
        return verdict(throughput_round(n, 1)["peak_rss"], n, 1)
    return verdict(throughput["peak_rss"], throughput["messages"], len(throughput["rounds"]))
