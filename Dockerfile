# blueflow worker image: slim, non-root. `docker run blueflow --bucket_name=...` starts a worker,
# exactly like `kentik/blueflow:v1 --bucket_name=...`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams streams
COPY connectors connectors
COPY schemas schemas
COPY devstack devstack
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 blueflow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/blueflow
EXPOSE 8083
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8083/healthz', timeout=4)" || exit 1
ENTRYPOINT ["blueflow"]
