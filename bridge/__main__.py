"""python -m bridge: the same as `flow-engine bridge`."""

from flow_engine.cli.processes import bridge

bridge(prog_name="python -m bridge")
