"""Celery configuration of Flow Engine, from the environment (README: Configuration).

Reliability settings of DESIGN §3: late acks, requeue when a worker child dies, one task prefetched
per process, no results, JSON only. A bad setting stops the process with one line naming it.
"""

import sys

from flow_engine import settings as _settings

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
}
task_default_queue = "flow-engine"
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
