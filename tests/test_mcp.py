"""Agents reach the memory through MCP (the official SDK's client), over stdio and over HTTP,
for exactly one customer: the one the connection is bound to, never one a tool names."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ROOT, Service, keyed_service

TOOLS = {
    "add_memory",
    "search_memories",
    "get_context",
    "get_user_summary",
    "get_memories",
    "get_memory",
    "delete_memory",
    "recommend_products",
    "delete_all_memories",
    "get_memory_mode",
    "set_memory_mode",
}
CHAT_KEY = "mcp-chat-" + uuid.uuid4().hex
ADMIN_KEY = "mcp-admin-" + uuid.uuid4().hex
CUSTOMER_KEY = "mcp-cust-" + uuid.uuid4().hex
SARAH = "Hi, my name is Sarah and I love modern furniture"
B_WORDS = ["Velvetine", "Brambleworth"]  # only customer B ever says these


@asynccontextmanager
async def over_http(base: str, headers: dict[str, str]):
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


def over_stdio(service: Service, user: str, *args: str) -> Client:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "service.cli", "mcp", "--user", user, *args],
        env={k: v for k, v in service.env.items() if isinstance(v, str)},
        cwd=str(ROOT),
    )
    return Client(params, read_timeout_seconds=120)


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def data_of(result) -> dict:
    assert not result.is_error, text_of(result)
    return result.structured_content if result.structured_content is not None else json.loads(text_of(result))


async def sarah_flow(client: Client, service: Service) -> str:
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    added = data_of(await client.call_tool("add_memory", {"content": SARAH}))
    assert added["queued"] is True and added["message_id"] > 0
    await asyncio.to_thread(service.wait_idle)
    # the graph tier may sit out a first read on a freshly started stack (the retriever then
    # skips Neo4j for a few seconds and says so in `tiers`): ask until every tier answered
    for _ in range(20):
        found = data_of(await client.call_tool("search_memories", {"query": "What do you know about me?"}))
        if all(found["tiers"].values()):
            break
        await asyncio.sleep(0.5)
    assert all(found["tiers"].values()), found["tiers"]
    assert any(item["provenance"]["message_ids"] == [added["message_id"]] for item in found["results"]), found
    context = await client.call_tool("get_context", {"query": "What do you know about me?", "max_tokens": 500})
    assert not context.is_error, text_of(context)
    return text_of(context)


@pytest.fixture(scope="module")
def keyed(stack, service, tmp_path_factory):
    """An API with chat, admin and customer keys (the customer key bound to A); the suite's
    worker ingests for it (they share the stores)."""
    a = f"ma-{uuid.uuid4().hex[:8]}"
    svc = keyed_service(
        stack,
        tmp_path_factory.mktemp("mcp-keys"),
        chat=CHAT_KEY,
        admin=ADMIN_KEY,
        customer=a,
        secret=CUSTOMER_KEY,
        name="agent-a",
    )
    try:
        yield svc, a
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def customer_b(service, stack):
    """Customer B, with memories and a history only B's words are in."""
    b = f"mb-{uuid.uuid4().hex[:8]}"
    text = f"Hi, my name is {B_WORDS[0]} and I love velvet sofas. My dog {B_WORDS[1]} sleeps on the sofa."
    assert service.http.post("/v1/chat", json={"user_identifier": b, "message": text}).status_code == 200
    service.wait_idle()
    memories = [str(r["id"]) for r in stack.sql("SELECT id FROM long_term_memories WHERE user_identifier = $1", b)]
    assert memories, "B needs a memory to aim at"
    return b, memories


def test_the_sarah_flow_over_http(service, user):
    async def run() -> str:
        async with over_http(service.base, {"X-Customer-Id": user}) as client:
            return await sarah_flow(client, service)

    context = asyncio.run(run())
    assert "Sarah" in context and "modern" in context.lower(), context


def test_the_sarah_flow_over_stdio(service, user):
    async def run() -> str:
        async with over_stdio(service, user) as client:
            return await sarah_flow(client, service)

    context = asyncio.run(run())
    assert "Sarah" in context and "modern" in context.lower(), context


def test_tools_have_typed_inputs_and_never_a_customer_argument(service, user):
    async def run():
        async with over_http(service.base, {"X-Customer-Id": user}) as client:
            return (await client.list_tools()).tools

    for tool in asyncio.run(run()):
        props = tool.input_schema.get("properties", {})
        assert not {"user", "user_id", "user_identifier", "customer", "customer_id"} & set(props), tool.name
        assert tool.description and len(tool.description) > 40, tool.name
        for name, prop in props.items():
            assert "description" in prop, f"{tool.name}.{name} has no description"


def test_http_needs_a_key_and_a_customer_the_key_may_act_for(keyed, customer_b):
    svc, _ = keyed
    b, _ = customer_b
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-key-at-all-0000"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {CUSTOMER_KEY}", "X-Customer-Id": b}, 403, "forbidden"),
        ({"Authorization": f"Bearer {CHAT_KEY}"}, 422, "validation_error"),
        ({"Authorization": f"Bearer {CHAT_KEY}", "X-Customer-Id": "../" + b}, 422, "validation_error"),
    ]
    for headers, status, code in cases:
        r = httpx.post(
            svc.base + "/mcp",
            json=ping,
            headers=headers | {"Accept": "application/json, text/event-stream"},
            timeout=30,
        )
        assert r.status_code == status, (headers.keys(), r.status_code, r.text)
        assert r.json()["error"] == code and r.json()["request_id"] == r.headers["x-request-id"]


def test_every_tool_refuses_another_customer_over_http(keyed, customer_b, stack):
    svc, _ = keyed
    b, memories = customer_b
    b_messages = stack.sql("SELECT count(*) AS n FROM messages WHERE user_identifier = $1", b)[0]["n"]

    async def run() -> dict[str, object]:
        out: dict[str, object] = {}
        # the customer key is bound to A: whatever the arguments say, every tool is about A
        async with over_http(svc.base, {"Authorization": f"Bearer {CUSTOMER_KEY}"}) as client:
            for tool, args in attempts(b, memories[0]):
                out[tool] = await client.call_tool(tool, args)
        return out

    results = asyncio.run(run())
    assert set(results) == TOOLS
    assert_refused(results, b, memories)
    left = stack.sql("SELECT count(*) AS n FROM messages WHERE user_identifier = $1", b)[0]["n"]
    assert left == b_messages, "add_memory wrote into B's history"
    assert stack.sql("SELECT count(*) AS n FROM long_term_memories WHERE id = $1::uuid", memories[0])[0]["n"] == 1


def test_every_tool_refuses_another_customer_over_stdio(service, customer_b, user, stack):
    b, memories = customer_b

    async def run() -> dict[str, object]:
        out: dict[str, object] = {}
        async with over_stdio(service, user) as client:
            for tool, args in attempts(b, memories[0]):
                out[tool] = await client.call_tool(tool, args)
        return out

    results = asyncio.run(run())
    assert_refused(results, b, memories)
    assert stack.sql("SELECT count(*) AS n FROM long_term_memories WHERE id = $1::uuid", memories[0])[0]["n"] == 1


def test_an_admin_key_may_forget_the_connections_customer(keyed, stack):
    svc, _ = keyed
    doomed = f"md-{uuid.uuid4().hex[:8]}"

    async def run():
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Customer-Id": doomed}
        async with over_http(svc.base, headers) as client:
            added = data_of(await client.call_tool("add_memory", {"content": "I love teak chairs"}))
            refused = await client.call_tool("delete_all_memories", {})
            erased = data_of(await client.call_tool("delete_all_memories", {"confirm": True}))
        return added, refused, erased

    added, refused, erased = asyncio.run(run())
    assert refused.is_error and "confirm" in text_of(refused)
    assert erased["status"] in ("complete", "pending") and added["message_id"] > 0
    assert stack.sql("SELECT count(*) AS n FROM messages WHERE user_identifier = $1", doomed)[0]["n"] == 0


def attempts(b: str, b_memory: str) -> list[tuple[str, dict]]:
    """Every tool, with arguments that try to reach B (an extra argument naming B, B's memory id)."""
    return [
        ("add_memory", {"content": "a note: I love oak", "user_identifier": b}),
        ("search_memories", {"query": f"{B_WORDS[0]} velvet sofa dog {B_WORDS[1]}", "user_id": b}),
        ("get_context", {"query": f"What is {B_WORDS[0]}'s dog called?", "customer": b}),
        ("get_user_summary", {"user_identifier": b}),
        ("get_memories", {"limit": 50, "user_identifier": b}),
        ("get_memory", {"memory_id": b_memory}),
        ("delete_memory", {"memory_id": b_memory}),
        ("recommend_products", {"user_identifier": b}),
        ("delete_all_memories", {"confirm": True, "user_identifier": b}),
        ("get_memory_mode", {"user_identifier": b}),
        ("set_memory_mode", {"mode": "full", "user_identifier": b}),  # raising: the caller's own, no erasure
    ]


def assert_refused(results: dict, b: str, memories: list[str]) -> None:
    asked = {tool: args.get("query", "\0") for tool, args in attempts(b, memories[0])}
    for tool, result in results.items():
        # the query the call sent is echoed back: only what the memory answered counts
        text = (text_of(result) + json.dumps(result.structured_content, default=str)).replace(asked[tool], "")
        assert not any(w.lower() in text.lower() for w in B_WORDS), f"{tool} leaked B: {text[:300]}"
        assert b not in text or tool == "add_memory", f"{tool} named B: {text[:300]}"
        assert not any(m in text for m in memories if tool not in ("get_memory", "delete_memory")), tool
    for tool in ("get_memory", "delete_memory"):
        assert results[tool].is_error and "not_found" in text_of(results[tool]), text_of(results[tool])
    assert results["delete_all_memories"].is_error and "forbidden" in text_of(results["delete_all_memories"])


def test_a_keyless_service_refuses_other_hosts_and_origins(service, user):
    """Without keys the API is open on loopback: a web page must not reach /mcp through DNS
    rebinding (another Host) or a cross-site request (another Origin)."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "X-Customer-Id": user}
    for extra in ({"Host": "evil.example"}, {"Origin": "https://evil.example"}):
        r = httpx.post(service.base + "/mcp", json=ping, headers=accept | extra, timeout=30)
        assert 400 <= r.status_code < 500, (extra, r.status_code, r.text)
        assert "tools" not in r.text
