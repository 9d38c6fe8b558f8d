# blueflow worker image: slim, non-root, the product only (streams/, connectors/, schemas/ — no devstack/,
# tests/ or benchmarks/). `docker run blueflow --bucket_name=...` starts a worker, exactly like
# `kentik/blueflow:v1 --bucket_name=...`. Layers: dependencies first (rebuilt only when pyproject.toml
# changes), then the source (any code change rebuilds only the small blueflow wheel).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /deps -r requirements.txt
COPY README.md ./
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
# liveness (/healthz): fails only when a restart helps; a Kentik or COS outage shows on /readyz instead
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8083/healthz', timeout=4)" || exit 1
ENTRYPOINT ["blueflow"]
