"""python -m bridge"""

from flow_engine.processes import run_bridge

run_bridge()
