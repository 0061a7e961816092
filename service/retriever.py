"""Moved to the ``service.retrieval`` package; this name is kept until every import uses it."""

from service.retrieval import DEFAULT, PRESETS, Context, RetrievalConfig, Retriever  # noqa: F401
