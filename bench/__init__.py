"""Benchmarks: `python -m bench [NAME...]` (see bench/__main__.py), one concept a module:
stack.py (a fresh engine stack), workload.py (the messages), measure.py (CPU, percentiles), and one
module per benchmark.

May import anything: the engine, and the tests' harness (tests.devstack: the same processes, the
same fixtures). Nothing imports bench."""
