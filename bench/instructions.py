"""The "instructions" benchmark: CPU instructions the worker spends per message, counted by valgrind's
callgrind, so that it repeats to about 0.1 % on a busy machine where wall-clock figures do not.

In one process (run under callgrind): a fresh PostgreSQL database and Redis database BENCH_REDIS_DB
(default 2, flushed) with the shop demo active, BENCH_INSTR_MESSAGES (default 2,000) messages of the
throughput workload (bench/workload.py) XADDed to nf:incoming and handed on to their lanes by an
in-process bridge; then every lane is drained in-process by the worker's `Runtime.drain`, and only
that drain is counted (instrumentation is started and stopped around it through a tiny C helper
built with the valgrind headers). A warm-up of 40 messages of other contacts runs first, uncounted,
so connections, the flow cache and SQLAlchemy's compiled statements exist as in a running worker.
PYTHONHASHSEED is fixed (set ordering changes the count by a few tenths of a percent otherwise).

The figure is the drain's instructions divided by the messages; it covers the worker's own process
only (Redis and PostgreSQL run elsewhere). Needs valgrind, its headers and a C compiler; without
them the benchmark is skipped. Run on request only: `python -m bench instructions`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.stack import PG_ADMIN, REDIS_BASE, env_int
from bench.workload import FLOW_FILE, ORG, expected, message_plan, preload

HELPER_C = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""
WARM_UP_MESSAGES = 40


def _helper(directory: Path) -> Path | None:
    """The start/stop helper library, or None without a compiler or the valgrind headers."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        return None
    source, library = directory / "helper.c", directory / "helper.so"
    source.write_text(HELPER_C)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source)], check=True)
    return library


def run() -> dict[str, Any]:
    messages = env_int("BENCH_INSTR_MESSAGES", 2_000)
    valgrind = shutil.which("valgrind")
    with tempfile.TemporaryDirectory(prefix="fe-instr-") as tmp:
        helper = _helper(Path(tmp)) if valgrind else None
        if valgrind is None or helper is None:
            return {"summary": "instructions: SKIPPED (needs valgrind, its headers and a C compiler)",
                    "passed": True}
        env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_INSTR_HELPER": str(helper),
               "BENCH_INSTR_MESSAGES": str(messages)}
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             f"--callgrind-out-file={tmp}/callgrind.out", sys.executable, "-m", "bench.instructions"],
            env=env, capture_output=True, text=True, timeout=3600, cwd=Path(__file__).resolve().parent.parent)
        collected = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or collected is None:
            raise RuntimeError(f"the counted drain failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    per_message = int(collected.group(1)) / messages
    problems = [] if child["outbox"] == child["expected_outbox"] else \
        [f"outbox {child['outbox']} != expected {child['expected_outbox']}"]
    summary = f"instructions: {per_message / 1000:,.1f}k per message (worker drain of {messages:,} shop demo messages)"
    if problems:
        summary += f" | WRONG TOTALS: {'; '.join(problems)}"
    return {"summary": summary, "passed": not problems, "instructions_per_message": per_message,
            "messages": messages, "lanes": child["lanes"], "problems": problems}


def _counted_drain() -> dict[str, Any]:
    """The child, under callgrind: set up, hand on, drain (counted); its result as a JSON line."""
    import ctypes

    from bridge.loop import Bridge
    from flow_engine import ops
    from flow_engine import settings as settings_module
    from flow_engine.adapters.db import make_engine
    from flow_engine.adapters.keys import INCOMING, OUTBOX
    from flow_engine.adapters.scripts import connect
    from flow_engine.adapters.store import store_flow
    from flow_engine.runtime import Runtime
    from tests.devstack import flushed_redis, fresh_database

    helper = ctypes.CDLL(os.environ["BENCH_INSTR_HELPER"])
    messages = int(os.environ["BENCH_INSTR_MESSAGES"])
    redis_url = f"{REDIS_BASE}/{env_int('BENCH_REDIS_DB', 2)}"
    with flushed_redis(redis_url), fresh_database(PG_ADMIN, prefix="fe_bench_") as database_url:
        os.environ.update({"REDIS_URL": redis_url, "DATABASE_URL": database_url,
                           "FLOW_ENGINE_LOCK_TTL_MS": "600000"})  # valgrind runs the drain ~50x slower
        engine = make_engine(database_url)
        store_flow(engine, ORG, json.loads(FLOW_FILE.read_text()), name="shop_demo", activate=True,
                   created_by="bench")
        engine.dispose()
        settings = settings_module.load()
        client = connect(redis_url)
        lanes: list[str] = []  # in the order the bridge first handed events on to them

        def enqueue(lane: str, _conversational: bool) -> None:
            if lane not in lanes:
                lanes.append(lane)

        bridge = Bridge(settings, enqueue)
        bridge.ensure_group()
        if not bridge.try_lead():
            raise RuntimeError("the in-process bridge could not take the lease")
        runtime = Runtime(settings)

        def hand_on(total: int) -> None:
            while True:
                bridge.step(block_ms=10)
                info = next(g for g in client.xinfo_groups(INCOMING) if g["name"] == settings.group)
                left = ops.backlog(client, settings.group)  # inboxes included
                if int(info.get("entries-read") or 0) >= total and not left.lag and not left.pending:
                    return

        def drain_all() -> None:
            for lane in lanes:
                while (result := runtime.drain(lane, budget_s=1e9)) != "empty":
                    if result != "yield":
                        raise RuntimeError(f"lane {lane}: {result}")

        preload(client, message_plan(WARM_UP_MESSAGES), "5219", "wamid.instr-warm")
        hand_on(WARM_UP_MESSAGES)
        drain_all()
        lanes.clear()
        outbox_before = client.xlen(OUTBOX)
        plan = message_plan(messages)
        preload(client, plan, "5211", "wamid.instr")
        hand_on(WARM_UP_MESSAGES + messages)
        helper.start()
        drain_all()
        helper.stop()
        outbox = client.xlen(OUTBOX) - outbox_before
        runtime.close()
        bridge.resign()
    # Right after the drain, the outbox holds each kind's immediate answers (a greeting's second
    # text comes after its delay, which is not waited for here).
    mix, _outbox, _webhooks = expected(plan)
    immediate = mix["greeting"] + 2 * mix["pricing"] + mix["other"]
    return {"lanes": len(lanes), "outbox": outbox, "expected_outbox": immediate}


if __name__ == "__main__":
    print(json.dumps(_counted_drain()))
