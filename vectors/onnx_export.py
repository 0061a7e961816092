"""One-time ONNX export of all-MiniLM-L6-v2's transformer, cached per machine.

The exported graph maps ``input_ids, attention_mask, token_type_ids`` (int64, ``[batch,
seq]``) to the token embeddings ``last_hidden_state`` (float32, ``[batch, seq, 384]``);
mean pooling and L2 normalisation are done in numpy by :mod:`vectors.embedder`, exactly
as sentence-transformers does for this model.

The cache lives under the cache dir (``LOFT_CACHE_DIR``, default ``~/.cache/loft``) in ``onnx/<key>/``,
where the key hashes the weights file, the torch / transformers / onnxruntime versions
and this exporter's own version. A directory holds ``model.onnx`` plus ``reference.npy``:
the sentence-transformers (torch) embeddings of :data:`VERIFY_SENTENCES` computed at
export time, against which every load checks the ONNX output, so that a load does not
need torch at all. The directory is built under a temporary name and renamed into place
in one step, so concurrent processes see either nothing or a complete export.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

EXPORTER_VERSION = "1"  # bump when the export recipe changes
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
MODEL_FILE = "model.onnx"
QUANTIZED_FILE = "model-int8.onnx"  # the query model: weights of every MatMul in int8, per channel
REFERENCE_FILE = "reference.npy"
META_FILE = "meta.json"

# fixed sentences checked at every load (short, long, padded, non-ASCII, truncated)
VERIFY_SENTENCES = [
    "hi",
    "Do you have the oak dining table in stock?",
    "My sister Anna moved to Lisbon last spring and wants a sofa bed 🛋️ for guests.",
    "",
    "Ünïcödé – naïve café façade, 東京の家具店",
    "Delivery on Tuesday works. " * 80,  # well past 256 tokens: exercises truncation
]


DEFAULT_CACHE = Path.home() / ".cache" / "loft"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_file(model_dir: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return model_dir / name
    raise FileNotFoundError(f"no weights file in {model_dir}")


def export_key(model_dir: Path) -> str:
    import onnxruntime

    parts = [
        _file_sha256(weights_file(model_dir)),
        f"torch={_version('torch')}",
        f"transformers={_version('transformers')}",
        f"onnxruntime={onnxruntime.__version__}",
        f"opset={OPSET}",
        f"exporter={EXPORTER_VERSION}",
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def export_dir(model_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> Path:
    return cache_dir / "onnx" / f"all-minilm-l6-v2-{export_key(model_dir)}"


def ensure_export(model_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> tuple[Path, bool]:
    """The cached export directory for ``model_dir`` under ``cache_dir`` (the service
    passes ``LOFT_CACHE_DIR``); builds it if missing.

    Returns ``(directory, exported_now)``.
    """
    target = export_dir(model_dir, cache_dir)
    if (target / MODEL_FILE).is_file() and (target / REFERENCE_FILE).is_file():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _export_into(model_dir, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is per machine
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first
        except OSError:
            if not (target / MODEL_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # theirs is as good as ours
            return target, False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, True


def ensure_quantized(target: Path) -> Path:
    """The int8 copy of ``target``'s model (:data:`QUANTIZED_FILE`), made once beside it:
    ONNX Runtime's dynamic quantization of every MatMul's weights, per output channel (the
    activations are quantized at run time). Queries only: it costs about half (0.45–0.53x)
    the fp32 model's CPU per short query, and its vectors keep a cosine of about 0.99 to the
    fp32 ones (LoCoMo questions: min 0.986–0.988, median 0.993–0.995, by CPU); per-tensor
    weights, or quantizing the embedding lookups too, fell to 0.95
    (docs/experiments/2026-12-06-int8-queries.md).
    Written under a temporary name and renamed into place, like the export."""
    model = target / QUANTIZED_FILE
    if model.is_file():
        return model
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, name = tempfile.mkstemp(prefix=".int8.", suffix=".onnx", dir=target)
    os.close(fd)
    quiet = _Quiet()
    root = logging.getLogger()
    root.addFilter(quiet)  # its advice to pre-process the graph, which fails for this model
    try:
        quantize_dynamic(
            target / MODEL_FILE,
            name,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        os.chmod(name, 0o644)
        os.replace(name, model)  # atomic: another process's copy is as good as ours
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    finally:
        root.removeFilter(quiet)
    return model


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _export_into(model_dir: Path, out: Path) -> None:
    _trace(model_dir, out / MODEL_FILE)
    _write_reference(model_dir, out)


def _trace(model_dir: Path, model_file: Path) -> None:
    """The transformer's token embeddings as an ONNX graph (pooling stays in numpy)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    # eager attention traces to plain MatMul/Softmax with the padding mask as data
    # (sdpa's fast paths branch on tensor values, which a trace would freeze)
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            out: torch.Tensor = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return out

    # a padded batch, so that nothing about "no padding" is baked into the graph
    sample = tokenizer(["a short one", "and a rather longer second sentence here"], padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in INPUT_NAMES)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    import warnings

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEmbeddings(bert),
            args,
            str(model_file),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _write_reference(model_dir: Path, out: Path) -> None:
    """What the torch path (sentence-transformers) gives for the fixed sentences, and the
    versions it came from: the exported model is checked against both."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    with torch.inference_mode():
        reference = st.encode(
            VERIFY_SENTENCES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)
    np.save(out / REFERENCE_FILE, reference)
    (out / META_FILE).write_text(
        json.dumps(
            {
                "weights_sha256": _file_sha256(weights_file(model_dir)),
                "torch": _version("torch"),
                "transformers": _version("transformers"),
                "onnxruntime": _version("onnxruntime"),
                "opset": OPSET,
                "exporter": EXPORTER_VERSION,
                "max_seq_length": st.max_seq_length,
            },
            indent=1,
        )
    )
