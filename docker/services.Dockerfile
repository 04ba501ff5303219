# syntax=docker/dockerfile:1
# makam's Node.js services: one image, two targets.
#   docker build -f docker/services.Dockerfile --target api        -t makam-api .
#   docker build -f docker/services.Dockerfile --target dispatcher -t makam-dispatcher .
# TypeScript runs as it is (Node 24 strips the types): there is no compile step, only production
# dependencies. The build context is the repository root; .dockerignore keeps it to what is copied.
ARG NODE_IMAGE=node:24-bookworm-slim

# Production dependencies of every npm workspace, installed exactly from package-lock.json.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY services/ services/
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# The dashboard's static files, built with the dev dependencies (esbuild) that the image leaves out.
FROM ${NODE_IMAGE} AS web
WORKDIR /app
COPY package.json package-lock.json ./
COPY services/ services/
RUN npm ci --no-audit --no-fund --loglevel=error && npm run build -w @makam/dashboard

# The dispatcher's study process (python -m makam_study): Optuna, its Redis journal and
# scikit-learn (parameter importances), pinned by the workers' lock, and the makam_study sources
# only (no torch: it trains nothing). Debian bookworm's python3 is the 3.11 the lock was made with.
FROM ${NODE_IMAGE} AS study
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY workers-python/requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/study \
 && /opt/study/bin/pip install --no-cache-dir --disable-pip-version-check -c /tmp/requirements.lock optuna redis scikit-learn
COPY workers-python/src/makam_study/ /opt/study/src/makam_study/

# What both targets share: the sources, node_modules, a store directory owned by the `node` user.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    MAKAM_STORE_DIR=/var/lib/makam/store
WORKDIR /app
COPY --from=deps /app /app
COPY --from=web /app/services/dashboard/dist services/dashboard/dist
COPY docker/await-workers.ts docker/
RUN mkdir -p /var/lib/makam/store && chown node:node /var/lib/makam/store
VOLUME ["/var/lib/makam/store"]
# The node image's unprivileged user (uid 1000), numeric so that runAsNonRoot can verify it.
USER 1000:1000

# The REST API. /healthz: the process answers; /readyz: and Redis answers.
FROM runtime AS api
ENV MAKAM_API_HOST=0.0.0.0 \
    MAKAM_API_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.MAKAM_API_PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "services/api/src/server.ts"]

# A dispatcher for one resource class (MAKAM_CLASS) and its workers (MAKAM_WORKERS). It serves no
# port, so there is nothing for a health check to ask; it exits when it cannot go on. It starts
# once its workers answer (docker/await-workers.ts), so no job is handed to a worker still booting.
FROM runtime AS dispatcher
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=study /opt/study /opt/study
ENV MAKAM_STUDY_PYTHON=/opt/study/bin/python \
    PYTHONPATH=/opt/study/src
USER 1000:1000
HEALTHCHECK NONE
CMD ["node", "docker/await-workers.ts", "services/dispatcher/src/main.ts"]
