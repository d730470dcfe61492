"""`python -m bench [NAME...]`: run the named benchmarks (default: all registered ones).

A benchmark is a callable taking no arguments ("memory" may take the result of "throughput") and
returning a dict of results that holds at least `summary` (one human line) and `passed` (whether it
met its target). Each result is printed as its summary line and written to bench/results/<name>.json.
Exit code 1 when any benchmark missed its target or failed (its traceback on stderr, an ERROR summary
line, and the others still run), 2 for an unknown name.

To add a benchmark, write a module in bench/ with a `run()` function and register it below.

The benchmarks (each module's docstring says exactly what is measured), with their sizes; full sizes take
~10 minutes on the 2-core machine, so use small ones while developing:

  interpreter   pure core, one core                   BENCH_EVENTS (50,000), BENCH_ROUNDS (5)
  branching     pure core, a 10-case branch a message BENCH_EVENTS (50,000), BENCH_ROUNDS (5)
  throughput    bench/throughput.py + baselines.py    BENCH_MESSAGES (50,000 over 5,000 contacts), BENCH_ROUNDS
                (3), BENCH_EVENTS_ROUND / BENCH_FLOWER (1: one more round with -E and Flower),
                BENCH_BASELINES (1), BENCH_NAIVE_MESSAGES (10,000), BENCH_DIRECT_MESSAGES (50,000)
  memory        bench/memory.py: peak RSS per process sampled during the throughput rounds
  latency       bench/latency.py                      BENCH_LATENCY_RATES ("100,1000"), BENCH_LATENCY_MESSAGES
                (1,000), BENCH_LATENCY_ROUNDS (3)
  timers        bench/timers.py                       BENCH_TIMER_DELAYS (10,000), BENCH_TIMER_FLOWS (50),
                BENCH_TIMER_SPREAD_S (20), BENCH_TIMER_ROUNDS (3), BENCH_TIMER_SEED (6)
  timer_scale   bench/timer_scale.py                  BENCH_SCALE_WAITS (1,000,000), BENCH_SCALE_DUE (100,000),
                BENCH_SCALE_ROUNDS (3), BENCH_SCALE_LEAD_MS (30,000)
  fairness      bench/fairness.py (noisy neighbour)   BENCH_BLAST (60,000), BENCH_QUIET_RATE (20),
                BENCH_QUIET_ALONE_S (10)
  capacity      bench/capacity.py (Redis memory)      BENCH_CAPACITY_MESSAGES (300,000), BENCH_CAPACITY_RATE (3,000),
                BENCH_CAPACITY_RETENTION_S (5), BENCH_CAPACITY_MAXLEN (1,000)
  stats         bench/trails.py: `stats` on N runs    BENCH_STATS_RUNS (10,000), BENCH_ROUNDS (5)
  trail_writes  bench/trails.py: DB time per event with and without trails   BENCH_STATS_RUNS, BENCH_ROUNDS
  dedupe        bench/dedupe.py: hand-off Redis time a message as the dedupe hashes fill
                BENCH_DEDUPE_MESSAGES (2,000)
  instructions  bench/instructions.py: worker instructions per message (valgrind), on request only
                BENCH_INSTR_MESSAGES (2,000)

A small run: BENCH_EVENTS=10000 BENCH_ROUNDS=1 BENCH_MESSAGES=5000 BENCH_NAIVE_MESSAGES=1000
BENCH_DIRECT_MESSAGES=5000 BENCH_LATENCY_MESSAGES=300 BENCH_LATENCY_ROUNDS=1 BENCH_TIMER_DELAYS=1000
BENCH_TIMER_SPREAD_S=5 BENCH_TIMER_ROUNDS=1 BENCH_SCALE_WAITS=100000 BENCH_SCALE_DUE=10000 BENCH_SCALE_ROUNDS=1
python -m bench. Services: Redis databases 2 (BENCH_REDIS_DB, the stack) and 3 (BENCH_BASELINE_REDIS_DB, the
baselines) are flushed; each stack gets a fresh PostgreSQL database (BENCH_PG_URL names the server).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    branching,
    capacity,
    dedupe,
    fairness,
    instructions,
    interpreter,
    latency,
    memory,
    throughput,
    timer_scale,
    timers,
    trails,
)

Benchmark = Callable[[], dict[str, Any]]

# In run order: "memory" reports the peak RSS sampled during "throughput" (or runs a round itself).
BENCHMARKS: dict[str, Benchmark] = {
    "interpreter": interpreter.run,
    "branching": branching.run,
    "throughput": throughput.run,  # with the task-events round and the naive and direct baselines
    "memory": memory.run,
    "latency": latency.run,
    "timers": timers.run,
    "timer_scale": timer_scale.run,
    "fairness": fairness.run,
    "capacity": capacity.run,
    "stats": trails.run_stats,
    "trail_writes": trails.run_trail_writes,
    "dedupe": dedupe.run,
    "instructions": instructions.run,
}
ON_REQUEST = {"instructions"}  # not part of a run of all: needs valgrind, and counts rather than times

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # gitignored


def main(argv: list[str]) -> int:
    names = argv or [name for name in BENCHMARKS if name not in ON_REQUEST]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    all_passed = True
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            # "memory" judges the peaks sampled by "throughput" when it ran just before (else it runs a round).
            result = memory.run(results.get("throughput")) if name == "memory" else BENCHMARKS[name]()
        except Exception as exc:  # one broken benchmark (or a service restarting) must not hide the others
            traceback.print_exc()
            result = {"summary": f"{name}: ERROR {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                      "passed": False, "error": traceback.format_exc()}
        path = RESULTS_DIR / f"{name}.json"
        path.write_text(json.dumps({"benchmark": name, **result}, indent=2, ensure_ascii=False) + "\n")
        print(result["summary"], flush=True)
        all_passed = all_passed and bool(result["passed"])
        results[name] = result
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
