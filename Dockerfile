# The hub's one image: api, workers, beat, flower and the migration step all run from it
# (docker-compose.yml picks the command). Production reads every setting from FUSION_* env.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FUSION_ENV=production \
    FUSION_HOME=/var/lib/fusion

# No extras for production. Compose's demo profile builds the sandboxes' image with
# FUSION_EXTRAS="[sandbox]" (the platform emulators need moto and the contract validators).
ARG FUSION_EXTRAS=""

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes. The
# production dependencies alone: the extras (embedded servers, sandboxes, dev tools) stay out.
COPY pyproject.toml setup.py README.md ./
RUN mkdir -p fusion api console workers schemas migrations/versions \
 && touch celeryconfig.py boot.py \
 && pip install ".${FUSION_EXTRAS}" \
 && pip uninstall -y fusion-stage-hub \
 && rm -rf fusion api console workers schemas migrations celeryconfig.py boot.py build *.egg-info

# The source, named one by one so that nothing local (.venv, .fusion and its dev secrets)
# gets into the image, installed as `pip install fusion-stage-hub` installs it: the migrations
# travel inside the package (setup.py). tests/runtime/test_production_install.py installs
# what these lines copy, the same way, and runs every entry point from it.
COPY celeryconfig.py boot.py ./
COPY fusion fusion
COPY api api
COPY console console
COPY workers workers
COPY schemas schemas
COPY migrations migrations
RUN pip install --no-deps . \
 && cd / && rm -rf /src \
 && groupadd --system --gid 10001 fusion \
 && useradd --system --uid 10001 --gid fusion --create-home --home-dir /home/fusion \
      --shell /usr/sbin/nologin fusion \
 && mkdir -p "$FUSION_HOME" \
 && chown fusion:fusion "$FUSION_HOME"

# Writable by the hub, and beat's volume: `fusion beat` keeps celerybeat-schedule here.
WORKDIR $FUSION_HOME
# Numeric, so Kubernetes' runAsNonRoot can verify it (deploy/kubernetes runs as 10001 too).
USER 10001:10001
EXPOSE 8000 8001 5555
CMD ["gunicorn", "api.wsgi:app", "--bind", "0.0.0.0:8000", "--worker-class", "api.serving.ApiWorker", \
     "--workers", "4", "--threads", "4", \
     "--no-control-socket", "--access-logfile", "-"]
