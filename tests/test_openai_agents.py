"""The OpenAI Agents SDK on the live service: a session that is the service's transcript
(read, extended, rewound, cleared; driven by the SDK's own runner against the local fake
OpenAI server) and the ``get_context`` function tool invoked as the SDK invokes it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner
from agents.memory import Session
from agents.tool_context import ToolContext
from openai import AsyncOpenAI

from loft_memory import AsyncLoftClient
from loft_memory.integrations import session_uuid
from loft_memory.integrations.agents import LoftSession, context_tool
from tests.conftest import free_port, learned_context
from tests.fake_openai import FakeOpenAI


def test_session_is_the_transcript_read_extended_rewound_and_cleared(service, api, user):
    async def run() -> None:
        async with AsyncLoftClient(service.base) as loft:
            session = LoftSession("support-7", loft, user)
            assert isinstance(session, Session)  # the SDK's own protocol
            assert await session.get_items() == []
            assert await session.pop_item() is None  # nothing to rewind yet
            await session.add_items(
                [
                    {"role": "user", "content": "Hi, I'm Tomas. Do you have oak dining tables?"},
                    {"type": "function_call", "call_id": "c1", "name": "stock", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "2 in stock"},
                    {
                        "type": "message",
                        "role": "assistant",
                        "id": "msg_1",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": "Two, both solid oak.", "annotations": []}],
                    },
                ]
            )
            assert await session.get_items() == [
                {"role": "user", "content": "Hi, I'm Tomas. Do you have oak dining tables?"},
                {"role": "assistant", "content": "Two, both solid oak."},
            ]
            assert await session.get_items(limit=1) == [{"role": "assistant", "content": "Two, both solid oak."}]

            # the SDK's runner reads the session into the model's input and stores the new turns
            with FakeOpenAI(free_port()) as fake:
                model = OpenAIChatCompletionsModel("loft-test-model", AsyncOpenAI(base_url=fake.base_url, api_key="x"))
                agent = Agent(name="shop", instructions="You help a furniture shop's customers.", model=model)
                result = await Runner.run(
                    agent, "Which one is larger?", session=session, run_config=RunConfig(tracing_disabled=True)
                )
            sent = fake.requests[-1]["messages"]
            assert [(m["role"], m["content"]) for m in sent[1:]] == [
                ("user", "Hi, I'm Tomas. Do you have oak dining tables?"),
                ("assistant", "Two, both solid oak."),
                ("user", "Which one is larger?"),
            ]
            items = await session.get_items()
            assert items[-2:] == [
                {"role": "user", "content": "Which one is larger?"},
                {"role": "assistant", "content": result.final_output},
            ]
            sid = session_uuid(user, "support-7")
            stored = api.get(f"/v1/sessions/{user}/{sid}/messages").json()["messages"]
            assert [(m["role"], m["content"]) for m in stored] == [(i["role"], i["content"]) for i in items]

            # rewinding the last exchange, then clearing the whole session
            assert await session.pop_item() == {"role": "assistant", "content": result.final_output}
            assert (await session.get_items())[-1] == {"role": "user", "content": "Which one is larger?"}
            await session.clear_session()
            assert await session.get_items() == []
            assert api.get(f"/v1/sessions/{user}/{sid}/messages").status_code == 404
            await session.clear_session()  # clearing a cleared session is no error

    asyncio.run(run())


def test_context_tool_gives_the_agent_the_customers_context(service, loft, user):
    loft.import_messages(user, [{"role": "user", "content": "I'm Priya and I love rattan armchairs."}], channel="test")
    service.wait_idle()
    learned = learned_context(loft, user, "which chairs does she like?", says="Name: Priya", budget=600)

    async def invoke(tool: Any, context: Any, query: str) -> str:
        # as the SDK's runner calls a function tool the model chose: the JSON arguments it wrote
        arguments = json.dumps({"query": query})
        call = ToolContext(context, tool_name=tool.name, tool_call_id="call_1", tool_arguments=arguments)
        return str(await tool.on_invoke_tool(call, arguments))

    async def run() -> tuple[str, str, dict[str, Any]]:
        async with AsyncLoftClient(service.base) as aloft:
            fixed = context_tool(aloft, user, budget=600)
            per_run = context_tool(aloft, lambda ctx: ctx.context["customer"], budget=600)
            return (
                await invoke(fixed, None, "which chairs does she like?"),
                await invoke(per_run, {"customer": user}, "which chairs does she like?"),
                fixed.params_json_schema,
            )

    fixed, per_run, schema = asyncio.run(run())
    assert "rattan" in fixed.lower()
    assert per_run == fixed
    assert fixed == learned.text
    # the model fills in the question only: the customer is never an argument
    assert list(schema["properties"]) == ["query"]
    assert "question" in schema["properties"]["query"]["description"]


def test_context_tool_for_a_customer_with_no_memory_says_so(service):
    async def run() -> str:
        async with AsyncLoftClient(service.base) as aloft:
            tool = context_tool(aloft, "t-nobody-at-all")
            arguments = json.dumps({"query": "anything"})
            call = ToolContext(None, tool_name=tool.name, tool_call_id="c", tool_arguments=arguments)
            return str(await tool.on_invoke_tool(call, arguments))

    assert asyncio.run(run()) == "Nothing is remembered about this customer yet."
