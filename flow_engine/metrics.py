"""Every metric of the engine (SPEC §7), in one place, and the /metrics endpoint.

Prefork workers (and the processes of `flow-engine up`) count in Prometheus' multiprocess mode, so
totals are right however many processes count: `metrics_dir.use()` must run before this module is
imported (the Celery app and the supervisor do it), and one process serves the sum.
"""

from __future__ import annotations

import os
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values

from flow_engine.metrics_dir import MULTIPROC_ENV

LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENESS_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 5)

incoming_processed = Counter("nexia_engine_incoming_processed",
                             "Inbound contact messages processed by workers (timer resumes: sched_published)")
outbox_published = Counter("nexia_engine_outbox_published", "Entries written to nf:outbox")
webhooks_published = Counter("nexia_engine_webhooks_published", "Entries written to nf:webhooks")
errors = Counter("nexia_engine_errors", "Failures while processing, by kind", ["kind"])
retries = Counter("nexia_engine_retries", "Retries of a lane whose head event failed")
dlq = Counter("nexia_engine_dlq", "Entries sent to nf:incoming:dlq, by error", ["error"])
scheduled = Counter("nexia_engine_scheduled", "Timers added (delays and reply timeouts)")
sched_published = Counter("nexia_engine_sched_published", "Due timers published to nf:incoming")
duplicates = Counter("nexia_engine_duplicates", "Inbound messages dropped as Meta redeliveries")
ignored = Counter("nexia_engine_ignored", "Events that got no answer, by reason (receipt, duplicate, no-match, ...)",
                  ["reason"])
held = Counter("nexia_engine_held",
               "Messages held while the contact's run was in a delay (answered when it waits for a reply or ends)")
handoffs = Counter("nexia_engine_handoffs", "Contacts handed to an agent by a handoff step (flow.handoff events)")
handed_on = Counter("nexia_engine_handed_on", "Events handed on to lanes by the bridge")
runs = Counter("nexia_engine_runs", "Runs that reached a status: running (a run started), completed, failed, expired, "
               "interrupted", ["status"])

processing_seconds = Histogram("nexia_engine_processing_seconds", "Time to process one lane batch",
                               buckets=LATENCY_BUCKETS_S)
latency_seconds = Histogram("nexia_engine_latency_seconds",
                            "Inbound entry (stream id time) to its outbox entries being written",
                            buckets=LATENCY_BUCKETS_S)
timer_lateness_seconds = Histogram("nexia_engine_timer_lateness_seconds", "Due time to publication of a timer",
                                   buckets=LATENESS_BUCKETS_S)

backlog = Gauge("nexia_engine_backlog",
                "Inbound entries not yet processed: group lag, pending, waiting in the orgs' inboxes and in lanes",
                multiprocess_mode="mostrecent")
inbox_entries = Gauge("nexia_engine_inbox_entries", "Entries taken in from nf:incoming, waiting in their org's inbox",
                      multiprocess_mode="mostrecent")
pending_waits = Gauge("nexia_engine_pending_waits", "Contacts whose run is paused", multiprocess_mode="mostrecent")
stream_trimmed = Counter("nexia_engine_stream_trimmed", "Stream entries trimmed by the engine, by stream",
                         ["stream"])
stream_length = Gauge("nexia_engine_stream_length", "Entries in each stream", ["stream"],
                      multiprocess_mode="mostrecent")
scheduled_items = Gauge("nexia_engine_scheduled_items", "Timers in the ZSET", multiprocess_mode="mostrecent")
lane_events = Gauge("nexia_engine_lane_events", "Events waiting in lanes for a worker (part of the backlog)",
                    multiprocess_mode="mostrecent")
busy_lanes = Gauge("nexia_engine_busy_lanes", "Lanes holding events", multiprocess_mode="mostrecent")
bridge_lease_held = Gauge("nexia_engine_bridge_lease_held",
                          "1 when a bridge holds the lease (fe:bridge:lease) and reads nf:incoming, else 0",
                          multiprocess_mode="max")
worker_up = Gauge("nexia_engine_worker_up", "Celery worker processes running (set by each worker's main process)",
                  multiprocess_mode="livesum")


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics on `addr`:`port`: the sum over all processes in multiprocess mode, else this process."""
    if _values.ValueClass is not _values.MutexValue:  # the mode chosen when prometheus_client was imported
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=addr, registry=registry)
    else:
        start_http_server(port, addr=addr)


def serve_or_exit(port: int, addr: str) -> None:
    """`serve`, or one line naming the setting and exit code 2: a process asked for metrics that it
    cannot serve must not run blind."""
    try:
        serve(port, addr)
    except OSError as exc:
        print(f"flow-engine: FLOW_ENGINE_METRICS_PORT={port} (FLOW_ENGINE_METRICS_ADDR={addr}): {exc.strerror}",
              file=sys.stderr)
        sys.stdout.flush()
        os._exit(2)  # also from a Celery signal handler, which would catch SystemExit


def process_exited(pid: int) -> None:
    """Forget the live gauges of a process that is gone (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
