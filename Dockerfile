# The engine's image, built once by `docker compose build` (or `docker build -t bitloot .`):
# the locked runtime dependencies (requirements.lock, with hashes), then the project itself.
# The base is pinned by version and digest, as compose.yaml's images are.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app
COPY requirements.lock requirements-build.lock ./
RUN pip install --require-hashes --no-deps -r requirements-build.lock -r requirements.lock

COPY pyproject.toml README.md ./
COPY domain ./domain
COPY application ./application
COPY adapters ./adapters
COPY projections ./projections
COPY entrypoints ./entrypoints
COPY sandboxes ./sandboxes
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /var/lib/bitloot bitloot \
    && mkdir -p /var/lib/bitloot && chown bitloot /var/lib/bitloot

USER bitloot
ENV VAR_DIR=/var/lib/bitloot HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["bitloot", "serve"]
