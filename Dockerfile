# syntax=docker/dockerfile:1
# Build stage: the dependencies, compiled where needed, in a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY app ./app
# Install the project to resolve its dependencies, then drop it: the runtime runs the source tree,
# which keeps Alembic's migrations next to the code that finds them.
RUN pip install . && pip uninstall --yes tthc

# Runtime stage: the venv, the source and a non-root user.
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/tthc \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TTHC_DATABASE_URL=sqlite+aiosqlite:////var/lib/tthc/tthc.db
RUN groupadd --system tthc \
    && useradd --system --gid tthc --no-create-home --home-dir /srv/tthc tthc \
    && mkdir -p /var/lib/tthc && chown tthc:tthc /var/lib/tthc
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/tthc
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
USER tthc
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrate, then serve; set TTHC_DATABASE_URL=postgresql+asyncpg://… for production.
CMD ["sh", "-c", "python -m app.cli migrate && exec python -m app.cli serve --host 0.0.0.0 --port 8000"]
