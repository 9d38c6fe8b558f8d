# blueflow worker image: slim, non-root, the product only (streams/, connectors/, schemas/ — no devstack/,
# tests/ or benchmarks/). `docker run blueflow --bucket_name=...` starts a worker, exactly like
# `kentik/blueflow:v1 --bucket_name=...`. Layers: dependencies first, exactly as requirements.lock pins them
# with their hashes (regenerate it with `.venv/bin/python -m devstack.pylock` after changing pyproject.toml's
# dependencies), then the source (any code change rebuilds only the small blueflow wheel).
# Stopping: SIGTERM starts the worker's graceful stop, bounded at 15 s; `docker stop` waits only 10 s before
# SIGKILL, so run with `docker run --stop-timeout 20 ...` (compose: stop_grace_period; Kubernetes:
# terminationGracePeriodSeconds, 60 in deploy/deployment.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY streams streams
COPY connectors connectors
COPY schemas schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /app .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 blueflow
COPY --from=build /deps /deps
RUN pip install --no-cache-dir --no-index /deps/*.whl && rm -rf /deps
COPY --from=build /app /app
RUN pip install --no-cache-dir --no-index --no-deps /app/*.whl && rm -rf /app
USER 10001
WORKDIR /home/blueflow
EXPOSE 8083
STOPSIGNAL SIGTERM
# the port follows BLUEFLOW_HTTP_PORT (set the port by that variable, not by --http_port, for this check to
# follow it); the start period covers the Kafka check, topic creation and the first assignment
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('BLUEFLOW_HTTP_PORT') or '8083'), timeout=4)" || exit 1
ENTRYPOINT ["blueflow"]
