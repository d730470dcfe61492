"""The bridge: reads nf:incoming through a consumer group and hands events on to Celery."""
