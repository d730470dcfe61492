"""The I/O side: Redis keys (keys.py) and Lua scripts (scripts.py, lua/), the database (db.py,
schema.py, migrate.py), and applying an interpreter Outcome (effects.py, store.py).

May import: flow_engine.core, flow_engine.adapters, and the plain modules flow_engine.settings,
flow_engine.errors and flow_engine.clock — never a shell (runtime, tasks, ops, cli, the bridge, ...),
checked by tests/test_layers.py."""
