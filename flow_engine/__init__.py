"""Flow Engine: runs WhatsApp chat-automation flows on Celery, Redis and SQLAlchemy.

Three layers, each allowed to import only what is below it (tests/test_core_purity.py and
tests/test_layers.py check the rules):
- `core/`: pure — the flow language, inbound parsing, the interpreter, the simulator. Imports no I/O
  module and nothing of the engine outside the core.
- `adapters/`: the I/O — Redis keys and Lua scripts, the database, applying an Outcome. Imports the
  core and the plain modules `settings`, `errors` and `clock`; never a shell.
- the shells: `runtime.py` and `tasks.py` (the worker), `celery.py`, `scheduler.py`, `processes.py`,
  `supervisor.py`, `ops.py`, `flows.py`, `devtools.py`, `cli/`, and the `bridge` package. They may
  import both.
Plain modules used by every layer above the core: `settings.py`, `errors.py`, `clock.py`, `logs.py`,
`metrics.py`, `outages.py`. Importing any module does no I/O (tests/test_imports.py).
"""
