# syntax=docker/dockerfile:1
# makam's Python training worker (gRPC), with PyTorch and the worker's pinned dependencies.
#   CUDA (default):  docker build -f docker/worker.Dockerfile -t makam-worker:cuda .
#   CPU (laptops):   docker build -f docker/worker.Dockerfile -t makam-worker:cpu \
#                      --build-arg BASE_IMAGE=ubuntu:24.04 --build-arg TORCH_VARIANT=cpu .
# Both variants use Ubuntu 24.04 (Python 3.12) and differ only in the base image (CUDA runtime
# libraries or none) and the PyTorch build; everything else is pinned by
# workers-python/requirements.lock. The build context is the repository root.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${BASE_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

# The virtual environment: the lock's pins, torch as TORCH_VARIANT, then the worker itself.
FROM base AS build
ARG TORCH_VARIANT=cu128
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
WORKDIR /build
COPY docker/worker-requirements.sh ./
COPY workers-python/requirements.lock ./
RUN python3 -m venv /opt/makam \
 && sh worker-requirements.sh requirements.lock "${TORCH_VARIANT}" > requirements.txt \
 && /opt/makam/bin/pip install --extra-index-url "${TORCH_INDEX_URL}" -r requirements.txt
COPY workers-python/pyproject.toml workers-python/README.md workers-python/
COPY workers-python/src/ workers-python/src/
RUN /opt/makam/bin/pip install --no-deps ./workers-python \
 && /opt/makam/bin/python -c "import makam_worker.server, makam_worker.healthcheck, torch; print('torch', torch.__version__)"

FROM base AS runtime
ARG HF_HUB_OFFLINE=1
COPY --from=build /opt/makam /opt/makam
RUN groupadd --system --gid 10001 makam \
 && useradd --system --uid 10001 --gid makam --home-dir /var/lib/makam-worker --no-create-home --shell /usr/sbin/nologin makam \
 && mkdir -p /var/lib/makam-worker /var/cache/huggingface /models \
 && chown makam:makam /var/lib/makam-worker /var/cache/huggingface
# HF_HOME: the Hugging Face cache, a volume the weights are pre-loaded into. HF_HUB_OFFLINE=1
# (the default; a build arg and an environment variable) keeps a worker from downloading at run time.
# Listening on 0.0.0.0, the worker starts only with mutual TLS (MAKAM_WORKER_TLS_CERT, _KEY, _CLIENT_CA);
# without it, it refuses to, unless MAKAM_WORKER_ALLOW_INSECURE=1.
ENV PATH=/opt/makam/bin:${PATH} \
    HOME=/var/lib/makam-worker \
    HF_HOME=/var/cache/huggingface \
    HF_HUB_OFFLINE=${HF_HUB_OFFLINE} \
    MAKAM_WORKER_LISTEN=0.0.0.0:50051 \
    MAKAM_WORKER_STATE_DIR=/var/lib/makam-worker
VOLUME ["/var/cache/huggingface", "/var/lib/makam-worker"]
WORKDIR /var/lib/makam-worker
USER 10001:10001
EXPOSE 50051
# GetCapabilities over gRPC with a deadline; the first call imports torch, hence the start period.
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
  CMD ["python", "-m", "makam_worker.healthcheck", "--timeout", "15"]
# tini reaps the training processes' orphans and passes SIGTERM on: the worker then ends its runs.
ENTRYPOINT ["tini", "--"]
CMD ["makam-worker"]
