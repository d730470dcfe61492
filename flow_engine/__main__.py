"""python -m flow_engine: the flow-engine command."""

from flow_engine.cli import main

main()
