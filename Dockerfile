# The API / worker image used by docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY graph graph
COPY vectors vectors
COPY bench bench
COPY migrations migrations
COPY frontend frontend
RUN pip install -e .
EXPOSE 8001
CMD ["loftmem", "serve"]
