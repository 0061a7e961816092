"""A small OpenAI-compatible HTTP server for the LLM path (the only stand-in the suite
uses; no code ever calls the internet). It answers /v1/chat/completions:

- extraction requests (system prompt asks for a JSON object) with a fixed, schema-valid
  extraction for the message;
- summary requests with a one-line summary;
- chat replies with a sentence that quotes the memory context it was given (with
  ``stream: true`` as OpenAI's server-sent chunks, a few characters each, then ``[DONE]``),

and records every request so tests can assert what the service sent.
"""

from __future__ import annotations

import json
import re
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

STREAM_CHUNK_CHARS = 7  # small pieces: a streamed reply arrives as many chunks


def build_app(requests: list[dict], gate: threading.Event | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(request: Request) -> dict | StreamingResponse:
        body = await request.json()
        requests.append(body)
        system = body["messages"][0]["content"]
        user_text = body["messages"][-1]["content"]
        if "Return ONLY a JSON object" in system:
            name = re.search(r"I'm (\w+)|name is (\w+)", user_text)
            preferences = []
            if "boucle" in user_text:
                preferences.append(
                    {
                        "attribute": "material",
                        "value": "boucle",
                        "polarity": "prefers",
                        "strength": 0.8,
                        "confidence": 0.9,
                    }
                )
            style = re.search(r"love the (\w+) style", user_text)
            if style:  # free text a model may well return: not a catalog style
                preferences.append(
                    {
                        "attribute": "style",
                        "value": style.group(1),
                        "polarity": "prefers",
                        "strength": 0.8,
                        "confidence": 0.9,
                    }
                )
            # a date without a time or zone, as models often write one
            purchases = (
                [{"product_name": "Sloane Chaise Sectional", "at": "2024-05-01"}] if "bought" in user_text else []
            )
            content = json.dumps(
                {
                    "customer_name": (name.group(1) or name.group(2)) if name else None,
                    "preferences": preferences,
                    "purchases": purchases,
                    "memories": [{"kind": "fact", "text": f"LLM memory: {user_text[:60]}", "importance": 0.7}],
                }
            )
        elif "Summarise this conversation" in system:
            content = "LLM summary: the customer talked about furniture."
        else:
            context = system.split("What LOFT remembers about this customer:", 1)[-1].strip()
            content = f"(llm) Based on memory: {context[:300]}"
        if body.get("stream"):
            return StreamingResponse(_chunks(body.get("model", "test"), content, gate), media_type="text/event-stream")
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    return app


def _chunks(model: str, content: str, gate: threading.Event | None = None):
    """``content`` as OpenAI's ``chat.completion.chunk`` events: the role, the text in pieces,
    a finish reason, then ``[DONE]``. With ``gate`` cleared, the text waits for it after the
    role (a reply in progress; Starlette runs this generator in a thread)."""

    def event(delta: dict, finish: str | None = None) -> str:
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""})
    if gate is not None:
        gate.wait(120)
    for i in range(0, len(content), STREAM_CHUNK_CHARS):
        yield event({"content": content[i : i + STREAM_CHUNK_CHARS]})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"


class FakeOpenAI:
    def __init__(self, port: int) -> None:
        self.requests: list[dict] = []
        self.port = port
        self.gate = threading.Event()  # cleared: streamed replies hold after their first chunk
        self.gate.set()
        self.server = uvicorn.Server(
            uvicorn.Config(build_app(self.requests, self.gate), host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "fake OpenAI server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
