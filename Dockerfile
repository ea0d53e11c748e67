# The hub's one image: api, workers, beat, flower and the migration step all run from it
# (docker-compose.yml picks the command). Production reads every setting from FUSION_* env.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FUSION_ENV=production \
    FUSION_HOME=/var/lib/fusion

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p fusion api workers schemas \
 && touch celeryconfig.py boot.py \
 && pip install . \
 && pip uninstall -y fusion-stage-hub \
 && rm -rf fusion api workers schemas celeryconfig.py boot.py build *.egg-info

# The source, named one by one so that nothing local (.venv, .fusion and its dev secrets)
# gets into the image. Installed editable because fusion.db.migrate finds migrations/ beside
# the source tree, which a site-packages install would not carry.
COPY celeryconfig.py boot.py ./
COPY fusion fusion
COPY api api
COPY workers workers
COPY schemas schemas
COPY migrations migrations
RUN pip install --no-deps -e . \
 && groupadd --system --gid 10001 fusion \
 && useradd --system --uid 10001 --gid fusion --create-home --home-dir /home/fusion \
      --shell /usr/sbin/nologin fusion \
 && mkdir -p "$FUSION_HOME" \
 && chown fusion:fusion "$FUSION_HOME"

# Numeric, so Kubernetes' runAsNonRoot can verify it (deploy/kubernetes runs as 10001 too).
USER 10001:10001
EXPOSE 8000 8001 5555
CMD ["gunicorn", "api.wsgi:app", "--bind", "0.0.0.0:8000", "--worker-class", "api.serving.ApiWorker", \
     "--workers", "4", "--threads", "4", \
     "--no-control-socket", "--access-logfile", "-"]
