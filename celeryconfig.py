"""Celery configuration of Flow Engine, from the environment (README: Configuration).

Reliability settings of DESIGN §3: late acks, requeue when a worker child dies, one task prefetched
per process, no results, JSON only. A bad setting stops the process with one line naming it.
"""

import sys

from kombu import Queue

from flow_engine import settings as _settings
from flow_engine.adapters.keys import BUSY_LANES_QUEUE, NEW_LANES_QUEUE

try:
    _conf = _settings.get()
except _settings.SettingsError as _error:
    print(f"flow-engine: {_error}", file=sys.stderr)
    sys.exit(2)

broker_url = _conf.broker_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": 300,  # s; tasks drain a lane for ~2 s, so 300 s is far above the longest task
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    # Consume the queues in the order of task_queues: newly armed lanes (a quiet org's message) before
    # the next turn of a busy lane. A busy lane yields after FLOW_ENGINE_TASK_BUDGET_MS, so nobody
    # waits longer than about one turn.
    "queue_order_strategy": "priority",
}
task_queues = (Queue(NEW_LANES_QUEUE), Queue(BUSY_LANES_QUEUE))
task_default_queue = BUSY_LANES_QUEUE
task_acks_late = True
task_reject_on_worker_lost = True
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
worker_prefetch_multiplier = 1
worker_hijack_root_logger = False
worker_send_task_events = False  # Flower's live view: `-E` or FLOWER task events (halves throughput)
task_send_sent_event = False
imports = ("flow_engine.tasks",)
