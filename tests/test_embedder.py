"""The embedder's two backends (ONNX Runtime and torch) on their own: no stores.

The ONNX export goes to a fresh cache dir under pytest's tmp dir, so the first
load here really exports (≈10 s) and the second must reuse the file.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from vectors import embedder as embedder_mod
from vectors import onnx_export
from vectors.embedder import DIM, MODEL_NAME, Embedder, Threading

SENTENCES = [
    "hi",
    "",
    "   ",
    ".",
    "Do you still have the oak dining table for six?",
    "My daughter Mia starts university in Porto in September 🎓 and needs a desk.",
    "🛋️🛋️🛋️ 😍",
    "Can you deliver on Tuesday the 8th of May, 2023 after 5pm?",
    "I prefer walnut over oak, and no glass tops please — the kids break everything.",
    "ÜBERGRÖSSE Kleiderschrank, naïve café façade",
    "東京の家具店でソファを買いました",
    "Мне нужен диван-кровать для гостей",
    "what did I order last time",
    "The grey velvet armchair we talked about two weeks ago — is it back in stock?",
    "ok",
    "price?",
    "We're moving into a 45 m² flat in Lisbon, so everything has to be compact.",
    "My husband Tom is allergic to wool; no wool rugs.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    # ~2 KB: far past the 256-token limit, so truncation must match
    ("Delivery notes: leave the parcel with the neighbour at number 12 if nobody answers. " * 25)[:2048],
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("loft-cache")


@pytest.fixture(scope="module")
def onnx_embedder(cache_dir) -> Embedder:
    e = Embedder(backend="onnx", cache_dir=cache_dir)
    assert e.backend == "onnx", "the ONNX backend fell back to torch (see the logged warning)"
    return e


@pytest.fixture(scope="module")
def torch_embedder(cache_dir) -> Embedder:
    e = Embedder(backend="torch")
    assert e.backend == "torch"
    return e


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_attributes(onnx_embedder, torch_embedder):
    for e in (onnx_embedder, torch_embedder):
        assert e.model_name == MODEL_NAME == "sentence-transformers/all-MiniLM-L6-v2"
        assert e.dim == DIM == 384


def test_backends_agree(onnx_embedder, torch_embedder):
    a = onnx_embedder.embed(SENTENCES)
    b = torch_embedder.embed(SENTENCES)
    cos = _cos(a, b)
    assert cos.min() >= 0.9999, dict(zip(SENTENCES, cos.round(6), strict=True))


def test_batch_size_does_not_change_vectors(onnx_embedder):
    one_by_one = np.stack([onnx_embedder.embed([s])[0] for s in SENTENCES])
    batched = onnx_embedder.embed(SENTENCES, batch_size=7)
    assert _cos(one_by_one, batched).min() >= 0.99999


@pytest.mark.parametrize("which", ["onnx", "torch"])
def test_normalised_float32(which, onnx_embedder, torch_embedder):
    e = onnx_embedder if which == "onnx" else torch_embedder
    v = e.embed(SENTENCES)
    assert v.dtype == np.float32
    assert v.shape == (len(SENTENCES), 384)
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    empty = e.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_order_preserved_for_mixed_lengths(onnx_embedder):
    # lengths deliberately shuffled so that length-sorting reorders them inside the call
    texts = [SENTENCES[i] for i in (19, 0, 8, 6, 13, 1, 16, 10, 4, 15)]
    batch = onnx_embedder.embed(texts, batch_size=3)
    singles = np.stack([onnx_embedder.embed([t])[0] for t in texts])
    assert _cos(batch, singles).min() >= 0.99999  # row i is text i's vector


def test_tokenisation_matches_transformers(onnx_embedder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(embedder_mod._model_dir()))
    ours = onnx_embedder._impl.tokenize(SENTENCES)
    theirs = tok(SENTENCES, truncation=True, max_length=256)["input_ids"]
    assert ours == theirs
    assert max(len(ids) for ids in ours) == 256  # the long text is truncated at max_seq_length


def test_query_cache(onnx_embedder):
    q = "  is the walnut sideboard still available?  "
    first = onnx_embedder.embed_query(q)
    again = onnx_embedder.embed_query(q.strip())
    assert again is first  # a cache hit returns the very same vector
    assert asyncio.run(onnx_embedder.aembed_query(q)) is first
    direct = onnx_embedder.embed([q.strip()], query=True)[0]
    assert float(first @ direct) >= 0.99999
    batch = asyncio.run(onnx_embedder.aembed(["a", "b"]))
    assert batch.shape == (2, 384)


def test_query_cache_is_bounded(cache_dir):
    e = Embedder(backend="onnx", cache_size=3, cache_dir=cache_dir)
    for i in range(5):
        e.embed_query(f"query {i}")
    assert [text for _, text in e._cache] == ["query 2", "query 3", "query 4"]


def test_onnx_file_reused(onnx_embedder, cache_dir):
    first = onnx_embedder._impl
    assert first.exported_now  # the fixture's load in a fresh cache dir did export
    model = first.export_dir / onnx_export.MODEL_FILE
    assert first.export_dir.parent.parent == cache_dir
    stamp = model.stat().st_mtime_ns
    again = Embedder(backend="onnx", cache_dir=cache_dir)
    assert again.backend == "onnx"
    assert not again._impl.exported_now
    assert again._impl.export_dir == first.export_dir
    assert model.stat().st_mtime_ns == stamp
    # no temporary directories left behind
    assert [p.name for p in first.export_dir.parent.iterdir()] == [first.export_dir.name]


def test_queries_run_through_the_int8_model_made_once(onnx_embedder, cache_dir):
    impl = onnx_embedder._impl
    assert onnx_embedder.query_precision == "int8"
    quantized = impl.export_dir / onnx_export.QUANTIZED_FILE
    stamp = quantized.stat().st_mtime_ns
    texts = [t for t in SENTENCES if t.strip()]
    stored = onnx_embedder.embed(texts)  # what is stored: the fp32 model
    asked = np.stack([onnx_embedder.embed_query(t, user="u-int8") for t in texts])
    cosines = _cos(asked, stored)
    # int8 results differ by CPU: on an AVX2 one without VNNI (where ONNX Runtime's u8 x s8
    # products can saturate) "ok" gives 0.9695, these questions 0.984, LoCoMo's 0.988 or more
    assert cosines.min() >= 0.96, cosines.min()
    questions = [i for i, t in enumerate(texts) if t.endswith("?")]
    assert cosines[questions].min() >= 0.98  # a question searches what was stored as it would in fp32
    assert cosines.max() < 0.99999  # and it is another model's vector, not the fp32 one
    # another process finds the model made and uses it as it is
    again = Embedder(backend="onnx", cache_dir=cache_dir)
    assert again.query_precision == "int8"
    assert quantized.stat().st_mtime_ns == stamp
    assert not [p.name for p in impl.export_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_fp32_queries_when_asked_or_when_the_int8_model_misses(cache_dir, monkeypatch, caplog):
    q = "is the walnut sideboard still available?"
    full = Embedder(backend="onnx", cache_dir=cache_dir, query_precision="fp32")
    assert full.query_precision == "fp32"
    assert float(full.embed_query(q) @ full.embed([q])[0]) >= 0.99999
    monkeypatch.setattr(embedder_mod, "INT8_MIN_COSINE", 1.5)  # the int8 model cannot pass its check
    with caplog.at_level(logging.WARNING, logger="vectors.embedder"):
        missed = Embedder(backend="onnx", cache_dir=cache_dir)
    assert (missed.backend, missed.query_precision) == ("onnx", "fp32")
    assert any("int8 query model unavailable" in r.getMessage() for r in caplog.records)
    assert float(missed.embed_query(q) @ missed.embed([q])[0]) >= 0.99999
    with pytest.raises(ValueError, match="query precision"):
        Embedder(backend="onnx", cache_dir=cache_dir, query_precision="fp16")


def test_settings_pick_the_backend(cache_dir, monkeypatch):
    from pydantic import ValidationError

    from service.settings import Settings

    monkeypatch.setenv("LOFT_EMBEDDER", "torch")
    assert Embedder(backend=Settings().embedder, cache_dir=cache_dir).backend == "torch"
    monkeypatch.setenv("LOFT_EMBEDDER", "nonsense")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("LOFT_EMBEDDER", "onnx")
    assert Settings().embedder_query_precision == "int8"
    monkeypatch.setenv("LOFT_EMBEDDER_QUERY_PRECISION", "fp32")
    assert Settings().embedder_query_precision == "fp32"
    monkeypatch.setenv("LOFT_EMBEDDER_QUERY_PRECISION", "fp16")
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValueError):
        Embedder(backend="nonsense")


def test_failed_verification_falls_back_to_torch(cache_dir, monkeypatch, caplog):
    monkeypatch.setattr(embedder_mod, "VERIFY_MIN_COSINE", 1.5)  # nothing can pass
    monkeypatch.setattr(embedder_mod, "_warned_fallback", False)
    with caplog.at_level(logging.WARNING, logger="vectors.embedder"):
        e = Embedder(backend="onnx", cache_dir=cache_dir)
        e2 = Embedder(backend="onnx", cache_dir=cache_dir)
    assert e.backend == e2.backend == "torch"
    warnings = [r for r in caplog.records if "ONNX embedder unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once per process
    assert e.embed(["still works"]).shape == (1, 384)


def test_threading_options_reach_the_session_and_keep_the_vectors(onnx_embedder, cache_dir):
    one = Embedder(backend="onnx", cache_dir=cache_dir, threads=Threading(threads=1, spinning=False))
    two = Embedder(backend="onnx", cache_dir=cache_dir, threads=Threading(threads=2, spinning=True))
    for e, threads, spinning in ((one, 1, "0"), (two, 2, "1")):
        options = e._impl._session.get_session_options()
        assert options.intra_op_num_threads == threads
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning
    # the default: no spinning (an idle pool must not burn the cores the stores need)
    default = onnx_embedder._impl._session.get_session_options()
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert _cos(one.embed(SENTENCES), two.embed(SENTENCES)).min() >= 0.99999


def test_settings_pick_threads_per_role(monkeypatch):
    from service.settings import API_EMBEDDER_THREADS, WORKER_EMBEDDER_THREADS, Settings

    assert Settings().embedder_threads_for("api") == API_EMBEDDER_THREADS
    assert Settings().embedder_threads_for("worker") == WORKER_EMBEDDER_THREADS
    assert Settings().embedder_spinning is False
    monkeypatch.setenv("LOFT_EMBEDDER_THREADS", "3")
    monkeypatch.setenv("LOFT_EMBEDDER_SPINNING", "1")
    s = Settings()
    assert s.embedder_threads_for("api") == s.embedder_threads_for("worker") == 3
    assert s.embedder_spinning is True


def test_unavailable_torch_device_runs_on_the_cpu(torch_embedder, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the device is available")
    with caplog.at_level(logging.WARNING, logger="vectors.embedder"):
        e = Embedder(backend="torch", threads=Threading(device="cuda"))
    assert e.backend == "torch" and e.device == "cpu"
    assert any("not available" in r.getMessage() for r in caplog.records)
    assert _cos(e.embed(SENTENCES), torch_embedder.embed(SENTENCES)).min() >= 0.99999


def test_concurrent_queries_share_model_calls_and_keep_their_vectors(onnx_embedder):
    """Queries that miss the cache while one is being embedded go together in the next
    model call; each still gets its own vector (equal to embedding it alone)."""
    questions = [
        f"which {w} sofa did my sister like in {m}?" for w in ("oak", "linen", "grey") for m in ("May", "June")
    ]
    questions.append(questions[0])  # asked twice at once: embedded once

    async def ask_all() -> list[np.ndarray]:
        return await asyncio.gather(*(onnx_embedder.aembed_query(q, user="u-batch") for q in questions))

    onnx_embedder.clear()
    calls, batches = onnx_embedder.stats["encode_calls"], onnx_embedder.stats["query_batches"]
    got = asyncio.run(ask_all())
    used = onnx_embedder.stats["encode_calls"] - calls
    assert 1 <= used < len(set(questions)), used  # the first alone, the rest together
    assert onnx_embedder.stats["query_batches"] - batches == used
    alone = np.stack([onnx_embedder.embed([q], query=True)[0] for q in questions])
    assert _cos(np.stack(got), alone).min() >= 0.99999
    assert got[-1] is got[0]
    assert asyncio.run(onnx_embedder.aembed_query(questions[3], user="u-batch")) is got[3]  # cached as usual
    assert onnx_embedder.forget("u-batch") == len(set(questions))  # kept per customer


def test_a_failed_model_call_fails_its_waiters_and_not_the_next_batch(onnx_embedder, monkeypatch):
    real = onnx_embedder.embed
    failures = iter([RuntimeError("model call failed")])

    def flaky(texts, *, batch_size=32, query=False):
        for exc in failures:
            raise exc
        return real(texts, batch_size=batch_size, query=query)

    monkeypatch.setattr(onnx_embedder, "embed", flaky)  # a fault in the model call, not a stand-in for it

    async def ask(n: int) -> list:
        return await asyncio.gather(
            *(onnx_embedder.aembed_query(f"failing question {i}") for i in range(n)), return_exceptions=True
        )

    onnx_embedder.clear()
    first = asyncio.run(ask(3))
    assert all(isinstance(v, RuntimeError) for v in first), first  # one model call, three waiters told
    again = asyncio.run(ask(3))
    assert all(isinstance(v, np.ndarray) and v.shape == (384,) for v in again), again


def test_the_query_cache_is_per_customer(onnx_embedder):
    """One customer's cached question never answers another's (a hit is a whole model call
    faster: a shared cache would tell a customer what someone else just asked)."""
    q = "is the walnut sideboard still available for my sister?"
    onnx_embedder.clear()
    first = asyncio.run(onnx_embedder.aembed_query(q, user="alice"))
    hits, misses = onnx_embedder.stats["query_cache_hits"], onnx_embedder.stats["query_cache_misses"]
    other = asyncio.run(onnx_embedder.aembed_query(q, user="bob"))
    assert other is not first and float(other @ first) >= 0.99999
    assert onnx_embedder.stats["query_cache_misses"] == misses + 1 and onnx_embedder.stats["query_cache_hits"] == hits
    assert asyncio.run(onnx_embedder.aembed_query(q, user="alice")) is first
    assert onnx_embedder.forget("alice") == 1 and onnx_embedder.forget("bob") == 1


def test_a_query_embedded_while_its_customer_is_forgotten_is_not_cached(onnx_embedder):
    """An erasure's ``forget`` lands while the customer's query is being embedded: the
    vector is answered, but not put back into the cache."""
    onnx_embedder.clear()
    real = onnx_embedder.embed

    def forgotten_meanwhile(texts, *, batch_size=32, query=False):
        vectors = real(texts, batch_size=batch_size, query=query)
        onnx_embedder.forget("eve")  # the erasure lands between the miss and the put
        return vectors

    onnx_embedder.embed = forgotten_meanwhile  # the timing of a forget, not a stand-in for the model
    try:
        vector = asyncio.run(onnx_embedder.aembed_query("where is my dog Plimbo?", user="eve"))
        also = onnx_embedder.embed_query("and my cat?", user="eve")
    finally:
        del onnx_embedder.embed
    assert vector.shape == (384,) and also.shape == (384,)
    assert [k for k in onnx_embedder._cache if k[0] == "eve"] == []
    # after the forget, the customer's queries are cached again
    again = asyncio.run(onnx_embedder.aembed_query("where is my dog Plimbo?", user="eve"))
    assert asyncio.run(onnx_embedder.aembed_query("where is my dog Plimbo?", user="eve")) is again
