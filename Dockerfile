# syntax=docker/dockerfile:1
# Kasparro: one image for `kasparro serve`, `kasparro api` and `kasparro scheduler`.

# ---- build: a virtualenv with Kasparro and its dependencies, no build tools left behind
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

# ---- runtime: the virtualenv, the PostgreSQL client tools for backups, a non-root user
FROM python:3.11-slim-bookworm AS runtime
# pg_dump/pg_restore 15 (bookworm) handle PostgreSQL servers up to 15: keep compose's server on 15
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kasparro \
 && useradd --system --uid 10001 --gid kasparro --home-dir /app --shell /usr/sbin/nologin kasparro \
 && mkdir -p /app/data/backups \
 && chown -R kasparro:kasparro /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KASPARRO_HOST=0.0.0.0 \
    KASPARRO_PORT=8000 \
    KASPARRO_LOG_FORMAT=json
WORKDIR /app
USER kasparro
VOLUME ["/app/data"]
EXPOSE 8000
# liveness only: /health/live answers without touching the database
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('KASPARRO_PORT', '8000')}/health/live\", timeout=4)"]
ENTRYPOINT ["kasparro"]
CMD ["serve"]
