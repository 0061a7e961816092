# The API / worker image used by docker-compose.yml. Dependencies come from uv.lock (the
# project's main dependencies only, no extras), installed with a hash-pinned uv from PyPI into
# /app/.venv, which is first on PATH; the project itself is installed editable as before.
# Only the service's own folders are copied: no dev stack (`devstack/`), benchmarks, tests or scripts.
# The service runs as the unprivileged user `loft`, which can write only its data and cache
# folders; the code and the environment stay root's.
#
# The base image is pinned by digest: the multi-platform index of python:3.11-slim (Python
# 3.11.15 on Debian trixie, linux/amd64 and linux/arm64 among others). To move it, take the
# new index digest from `docker buildx imagetools inspect python:3.11-slim`.
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    LOFT_DATA_DIR=/var/lib/loft LOFT_CACHE_DIR=/var/cache/loft \
    PATH=/app/.venv/bin:$PATH
WORKDIR /app
# uv by version and sha256 (the same file scripts/bootstrap.sh installs from)
COPY scripts/uv-requirements.txt /tmp/uv-requirements.txt
RUN pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/uv-requirements.txt \
    && rm /tmp/uv-requirements.txt
# the dependencies in a layer of their own: rebuilt only when the lockfile changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service service
COPY graph graph
COPY vectors vectors
COPY migrations migrations
COPY frontend frontend
# bytecode compiled now: the service user cannot write under /app
RUN uv sync --frozen --no-dev && python -m compileall -q service graph vectors
RUN useradd --system --uid 10001 --user-group --home-dir /var/cache/loft --no-create-home \
        --shell /usr/sbin/nologin loft \
    && install -d -o loft -g loft -m 0700 /var/lib/loft /var/cache/loft
USER 10001:10001
EXPOSE 8001
CMD ["loftmem", "serve"]
