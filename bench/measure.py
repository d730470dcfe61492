"""Measuring a benchmark's window: the CPU seconds each part used (psutil), whether other processes
competed, times from stream ids, and percentiles."""

from __future__ import annotations

import os
import statistics
from typing import Any

import psutil

OTHERS_WARNING_SHARE = 0.10  # the summary warns when other processes used more of the CPU than this


def stream_ms(stream_id: str) -> int:
    """The Redis server's clock (ms) when it wrote a stream entry."""
    return int(stream_id.split("-", 1)[0])


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _machine_busy_s() -> float:
    """CPU seconds the machine spent on anything but idling and waiting for I/O, since boot."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
                 + getattr(t, "steal", 0.0))


def cpu_snapshot(stack: Any) -> dict[str, float]:
    """CPU seconds used so far by each part: the stack's processes (with their children), redis-server,
    postgres (all backends: machine-wide), this process, and the whole machine ("busy")."""
    procs: dict[int, tuple[str, int, float]] = {}
    for proc in psutil.process_iter(["name", "ppid", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            procs[proc.pid] = (proc.info["name"] or "", proc.info["ppid"] or 0, times.user + times.system)
    children: dict[int, list[int]] = {}
    for pid, (_name, ppid, _cpu) in procs.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> float:
        return procs.get(pid, ("", 0, 0.0))[2] + sum(tree(child) for child in children.get(pid, []))

    snapshot = {"busy": _machine_busy_s(), "bench": procs.get(os.getpid(), ("", 0, 0.0))[2]}
    for name, process in stack.processes.items():
        if process.proc is not None:
            snapshot[name] = tree(process.proc.pid)
    for comm in ("redis-server", "postgres"):
        snapshot[comm] = sum(cpu for name, _ppid, cpu in procs.values() if name == comm)
    return snapshot


def cpu_used(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """CPU seconds per part between two snapshots; "other" is what the rest of the machine used."""
    used = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
    if used:
        used["other"] = round(used["busy"] - sum(v for k, v in used.items() if k != "busy"), 3)
        used["wall"] = round(wall_s, 3)
    return used


def others_cpu_share(windows: list[dict[str, float]]) -> float:
    """The share of the machine's CPU used by processes outside the benchmark while measuring."""
    windows = [w for w in windows if w]
    cpus = os.cpu_count() or 1
    return sum(w["other"] for w in windows) / max(sum(w["wall"] for w in windows) * cpus, 1e-9)


def cpu_warning(other_share: float) -> list[str]:
    if other_share > OTHERS_WARNING_SHARE:
        return [f"WARNING: other processes used {other_share:.0%} of the machine's CPU while measuring"]
    return []
