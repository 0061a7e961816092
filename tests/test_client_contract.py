"""The Python client and the wire contract stand alone: ``loft_memory`` imports with httpx
and pydantic, and the server's own modules and dependencies never come with it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

SERVER_ONLY = (
    "service",
    "graph",
    "vectors",
    "asyncpg",
    "numpy",
    "neo4j",
    "torch",
    "onnxruntime",
    "sentence_transformers",
    "fastapi",
    "starlette",
    "uvicorn",
    "mcp",
    "openai",
    "pgvector",
)

PROBE = """
import json, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} must not be imported by the client")
        return None

sys.meta_path.insert(0, Refuse())
import loft_memory
from loft_memory import AsyncLoftClient, LoftClient
from loft_memory.models import ChatResponse, ContextResponse, CustomerSummary, ErasureReceipt

ContextResponse.model_validate(CONTEXT)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

CONTEXT = {
    "text": "Customer: Sarah",
    "sections": {"profile": ["Customer: Sarah"]},
    "items": [
        {
            "kind": "profile",
            "section": "profile",
            "text": "Customer: Sarah",
            "score": 1.0,
            "provenance": {"message_ids": [1], "graph_path": "(Customer)"},
            "timestamp": None,
        }
    ],
    "tiers": {"postgres": True, "neo4j": True, "vectors": True},
    "errors": {},
    "budget": 1000,
    "tokens": 4,
    "preset": "default",
    "took_ms": 1.0,
}


def test_the_client_imports_with_httpx_and_pydantic_alone():
    code = f"BLOCKED = {SERVER_ONLY!r}\nCONTEXT = {CONTEXT!r}\n" + PROBE
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout))
    assert {"loft_memory", "httpx", "pydantic"} <= loaded
    assert loaded.isdisjoint(SERVER_ONLY), loaded & set(SERVER_ONLY)


def test_the_probe_refuses_a_server_module():
    """The guard itself works: importing the server under it fails."""
    code = f"BLOCKED = {SERVER_ONLY!r}\nCONTEXT = {CONTEXT!r}\n" + PROBE.replace(
        "import loft_memory\n", "import service.api.app\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "must not be imported by the client" in run.stderr
