# ds-pipelines: Python 3.11, the locked dependencies (uv.lock) and the project's notebooks and configs.
#
#   GPU runners (CUDA runtime base):  docker build -t ds-pipelines .
#   CPU only:                         docker build --build-arg BASE_IMAGE=ubuntu:22.04 -t ds-pipelines:cpu .
#   Python from the base's packages:  --build-arg BASE_IMAGE=debian:bookworm-slim --build-arg PYTHON_FROM=apt
#   Run:                              docker run --rm ds-pipelines ds-pipelines run --all
#
# Needs BuildKit (RUN --mount). Tags: `ds-pipelines image-tag` hashes exactly this file, .dockerignore,
# pyproject.toml and uv.lock; the scheme is in ds_pipelines/project/image.py.

ARG BASE_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu22.04
# uv's own image, only to copy its static binary; the version that wrote uv.lock. It also fixes which
# 3.11 patch release `uv python install` picks, so a rebuild gets the same interpreter.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${BASE_IMAGE}

# Where Python 3.11 comes from:
#   uv   a python-build-standalone build installed by uv (downloads from github.com): the same
#        interpreter on any base, and the only full 3.11 release for Ubuntu 22.04.
#   apt  the base's python3.11 package: Debian 12 ships 3.11.2; Ubuntu 22.04 only a 3.11.0 release
#        candidate in universe, so use it there only when nothing else can be reached.
ARG PYTHON_FROM=uv
ARG PYTHON_VERSION=3.11
ARG DEBIAN_FRONTEND=noninteractive

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# ca-certificates: HTTPS to MLflow and GitLab; git: `ds-pipelines detect` and the commit in results.json;
# libgomp1: XGBoost's OpenMP runtime; tini: PID 1 that forwards signals and reaps notebook kernels.
# Versions are not pinned: the base's archive drops superseded versions (a pin would break rebuilds) and
# these packages should get its security updates; the Python packages are the locked ones.
# safe.directory: CI checkouts belong to the runner's user, not to this image's, and git refuses to read
# a repository of another owner ("dubious ownership"); this image only ever runs its own jobs.
# hadolint ignore=DL3008
RUN case "${PYTHON_FROM}" in \
      uv) python_package= ;; \
      apt) python_package="python${PYTHON_VERSION}" ;; \
      *) echo "PYTHON_FROM must be uv or apt, got '${PYTHON_FROM}'" >&2; exit 1 ;; \
    esac \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git libgomp1 tini ${python_package} \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*'

COPY --from=uv /uv /usr/local/bin/uv

# Interpreters outside /root, so the non-root user can run them; the uv cache stays out of the layers.
# uv trusts the base's certificate store, so a base that adds a company's CA builds behind its proxy.
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_SYSTEM_CERTS=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_FROZEN=1

WORKDIR /app

# The virtual environment, on the interpreter PYTHON_FROM chose; `uv sync` below keeps using it.
RUN if [ "${PYTHON_FROM}" = uv ]; then \
      UV_PYTHON_DOWNLOADS=manual uv python install "${PYTHON_VERSION}" \
      && python="$(uv python find --managed-python "${PYTHON_VERSION}")"; \
    else \
      python="$(command -v "python${PYTHON_VERSION}")"; \
    fi \
 && uv venv --python "${python}" /app/.venv

# Dependencies layer: only the lock and the project's metadata, so a code change reuses it.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-install-project

# A numeric USER below: hosts and Kubernetes (runAsNonRoot) can check it without this image's passwd.
RUN groupadd --gid 10001 ds \
 && useradd --create-home --uid 10001 --gid ds --shell /bin/bash ds

# Code layer: the package (installed editable, so the project folder is /app), notebooks and configs.
# Bytecode is compiled here because /app is read-only to the user who runs it.
COPY README.md workspace.yaml ./
COPY configs/ configs/
COPY notebooks/ notebooks/
COPY ds_pipelines/ ds_pipelines/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev \
 && /app/.venv/bin/python -m compileall -q ds_pipelines \
 && mkdir .ds-pipelines outputs results \
 && chown ds:ds .ds-pipelines outputs results
# Mount points of the deployment's volumes (deploy/compose.yaml, deploy/dagster.yaml), owned by the user so that
# an empty volume mounted there first takes that owner: the commit sensor's checkouts, and a commit run's folder.
RUN mkdir .ds-pipelines/checkouts commit && chown ds:ds .ds-pipelines/checkouts commit

# The user's writable places: the embedded Dagster instance and MLflow store (.ds-pipelines),
# the configs' default outputs and `--output-dir results`. Mount volumes there to keep them.
# MLflow and python-gitlab (requests) trust the base's certificate store too, not only certifi's.
USER 10001:10001
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# tini runs whatever command is given, so `docker run IMAGE ds-pipelines run --all` and GitLab CI
# job scripts (run through a shell) both work without overriding the entrypoint.
ENTRYPOINT ["tini", "--"]
CMD ["ds-pipelines", "--help"]

# Last, so that changing them (every commit) rebuilds no layer.
ARG BASE_IMAGE
ARG VCS_REF=unknown
ARG IMAGE_TAG=unknown
ARG SOURCE_URL=
LABEL org.opencontainers.image.title="ds-pipelines" \
      org.opencontainers.image.description="Jupyter notebooks run as Dagster assets, tracked in MLflow" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.ds-pipelines.image-tag="${IMAGE_TAG}" \
      io.ds-pipelines.python-from="${PYTHON_FROM}"
# The reproducibility record names the image a notebook ran in (ds_pipelines/results/reproducibility.py).
ENV DS_PIPELINES_IMAGE_TAG="${IMAGE_TAG}"
