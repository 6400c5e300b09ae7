# syntax=docker/dockerfile:1
# The base of both stages: any image with Python 3.11 and its venv module. `scripts/container-check`
# builds with a local Debian bookworm base (python3.11, no `python` command): see docs/deployment.md.
ARG BASE_IMAGE=python:3.11-slim

# Build stage: the dependencies, compiled where needed, in a virtual environment.
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# `python` on the official image, `python3.11` on a Debian base that has no `python` command.
RUN if command -v python >/dev/null 2>&1; then py=python; else py=python3.11; fi \
    && "$py" -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The runtime lock file (exact versions, checked against their hashes), the project itself not
# installed: the runtime runs the source tree, which keeps Alembic's migrations next to the code.
COPY requirements/runtime.txt ./
RUN pip install --require-hashes -r runtime.txt

# Runtime stage: the venv, the source and a non-root user.
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/tthc \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TTHC_DATABASE_URL=sqlite+aiosqlite:////var/lib/tthc/tthc.db \
    TTHC_PORT=8000
RUN groupadd --system tthc \
    && useradd --system --gid tthc --no-create-home --home-dir /srv/tthc tthc \
    && mkdir -p /var/lib/tthc && chown tthc:tthc /var/lib/tthc
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/tthc
# pyproject.toml: `tthc --version` reads the version there when the package is not installed.
COPY alembic.ini pyproject.toml ./
COPY migrations ./migrations
COPY app ./app
USER tthc
EXPOSE 8000
# TTHC_PORT: the port served and probed (another one when the container shares the host's network).
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TTHC_PORT', '8000'))"
# Migrate, then serve; set TTHC_DATABASE_URL=postgresql+asyncpg://… for production.
CMD ["sh", "-c", "python -m app.cli migrate && exec python -m app.cli serve --host 0.0.0.0 --port \"${TTHC_PORT:-8000}\""]
