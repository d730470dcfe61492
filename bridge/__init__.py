"""The bridge: reads nf:incoming through a consumer group and hands events on to Celery.

A shell: routing.py is pure (entries -> lane pushes) and loop.py the I/O around it. May import the
core, the adapters and flow_engine's plain modules (settings, errors, clock, metrics, outages); the
Celery side is reached only through the enqueue function it is given."""
