# One image for every Flow Engine process (worker, bridge, scheduler, flower, migrate).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY flow_engine ./flow_engine
COPY bridge ./bridge
COPY examples ./examples
RUN pip install . && useradd --create-home --uid 1000 engine
USER engine
CMD ["flow-engine", "--help"]
