# The API / worker image used by docker-compose.yml. Dependencies come from uv.lock (the
# project's main dependencies only, no extras), installed with a pinned uv from PyPI into
# /app/.venv, which is first on PATH; the project itself is installed editable as before.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH
WORKDIR /app
RUN pip install uv==0.13.9
# the dependencies in a layer of their own: rebuilt only when the lockfile changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service service
COPY graph graph
COPY vectors vectors
COPY bench bench
COPY migrations migrations
COPY frontend frontend
RUN uv sync --frozen --no-dev
EXPOSE 8001
CMD ["loftmem", "serve"]
