"""Retrieval: the context a chat turn is answered with, from all three tiers.

- ``config``: what runs and how it is weighed (``RetrievalConfig``, ``PRESETS``)
- ``candidates``: the typed results (``Candidate``; ``ContextItem``, ``Provenance``,
  ``ContextResponse`` for clients) and how a store's row becomes one
- ``sources``: PostgreSQL, the graph, the session's turns, the expansion (the only I/O)
- ``fusion``: rank fusion and boosts; ``packing``: de-duplication, budget, rendering (pure)
- ``retriever``: ``Retriever.context``, the steps in order
"""

from service.retrieval.candidates import Context
from service.retrieval.config import DEFAULT, PRESETS, RetrievalConfig
from service.retrieval.retriever import Retriever

__all__ = ["DEFAULT", "PRESETS", "Context", "RetrievalConfig", "Retriever"]
