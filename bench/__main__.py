"""`python -m bench [NAME...]`: run the named benchmarks (default: all registered ones).

A benchmark is a callable taking no arguments and returning a dict of results that holds at least
`summary` (one human line) and `passed` (whether it met its target). Each result is printed as its
summary line and written to bench/results/<name>.json. Exit code 1 when any benchmark missed its
target, 2 for an unknown name.

To add a benchmark, write a module in bench/ with a `run()` function and register it below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import interpreter, runtime

Benchmark = Callable[[], dict[str, Any]]

BENCHMARKS: dict[str, Benchmark] = {
    "interpreter": interpreter.run,
    "runtime": runtime.run,
}

RESULTS_DIR = Path(__file__).resolve().parent / "results"  # gitignored


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    all_passed = True
    for name in names:
        result = BENCHMARKS[name]()
        path = RESULTS_DIR / f"{name}.json"
        path.write_text(json.dumps({"benchmark": name, **result}, indent=2, ensure_ascii=False) + "\n")
        print(result["summary"], flush=True)
        all_passed = all_passed and bool(result["passed"])
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
