"""LangChain on the live service: a chat history that is a session (read, extended by a
chain, cleared) and a retriever whose documents are the context's items with provenance."""

from __future__ import annotations

import asyncio

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from loft_memory import AsyncLoftClient
from loft_memory.integrations import TurnPages, session_uuid
from loft_memory.integrations.langchain import LoftChatMessageHistory, LoftRetriever
from tests.conftest import learned_context


def test_history_is_the_session_read_extended_by_a_chain_and_cleared(api, loft, user):
    history = LoftChatMessageHistory(loft, user, "web-42")
    assert history.messages == []  # a session not started yet
    history.add_messages(
        [
            HumanMessage("Hi, I'm Mira and I love velvet sofas.", id="lc-1"),
            AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "call-1"}]),  # only a tool call
            ToolMessage("3 velvet sofas in stock", tool_call_id="call-1"),
            AIMessage([{"type": "text", "text": "Velvet it is."}]),
        ]
    )
    history.add_messages([HumanMessage("Hi, I'm Mira and I love velvet sofas.", id="lc-1")])  # sent again
    assert [(type(m), m.content) for m in history.messages] == [
        (HumanMessage, "Hi, I'm Mira and I love velvet sofas."),
        (AIMessage, "Velvet it is."),
    ]
    # the same session, by its UUID, over plain HTTP
    sid = session_uuid(user, "web-42")
    assert sid == session_uuid(user, "web-42") != session_uuid("someone-else", "web-42")
    rows = api.get(f"/v1/sessions/{user}/{sid}/messages").json()["messages"]
    assert [(r["role"], r["external_id"]) for r in rows] == [("user", "lc-1"), ("assistant", None)]

    # a chain with history: LangChain reads the session before the model and adds both turns after
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
    model = FakeListChatModel(responses=["The Oslo sofa, in green velvet."])
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: LoftChatMessageHistory(loft, user, session_id),
        input_messages_key="question",
        history_messages_key="history",
    )
    reply = chain.invoke({"question": "Which sofa then?"}, config={"configurable": {"session_id": "web-42"}})
    assert reply.content == "The Oslo sofa, in green velvet."
    assert [m.content for m in history.messages][-2:] == ["Which sofa then?", "The Oslo sofa, in green velvet."]

    # the newest turns, a page at a time from the newest, in order
    pages = TurnPages(limit=3, max_turns=1000, page=2)
    while (ask := pages.ask()) is not None:
        pages.add(loft.session_messages(user, sid, cursor=ask[0], limit=ask[1]))
    assert len(pages.pages) == 2
    assert [t.content for t in pages.turns] == ["Velvet it is.", "Which sofa then?", "The Oslo sofa, in green velvet."]
    assert [m.content for m in LoftChatMessageHistory(loft, user, sid, max_messages=1).messages] == [
        "The Oslo sofa, in green velvet."
    ]

    history.clear()
    assert history.messages == []
    assert api.get(f"/v1/sessions/{user}/{sid}/messages").status_code == 404
    history.clear()  # clearing a cleared history is no error


def test_retriever_documents_are_context_items_with_provenance(service, loft, user):
    said = loft.import_messages(
        user,
        [
            {"role": "user", "content": "My name is Ines and I love velvet sofas in deep green."},
            {"role": "user", "content": "We are redoing the reading room with oak shelves."},
        ],
        channel="test",
    )
    service.wait_idle()
    learned = learned_context(loft, user, "what sofas does she like?", says="Name: Ines", budget=800)
    retriever = LoftRetriever(client=loft, user=user, budget=800)
    docs = retriever.invoke("what sofas does she like?")
    assert docs, "the context had items"
    assert all(set(d.metadata) >= {"kind", "section", "score", "message_ids", "memory_id", "graph_path"} for d in docs)
    velvet = [d for d in docs if "velvet" in d.page_content.lower()]
    assert velvet, [d.page_content for d in docs]
    assert any(set(d.metadata["message_ids"]) & set(said.message_ids) for d in velvet)
    assert all(d.metadata["user_identifier"] == user for d in docs)
    # the documents are the context's items, in its order
    assert [(d.page_content, d.metadata["memory_id"]) for d in docs] == [
        (i.text, i.provenance.memory_id) for i in learned.items
    ]
    assert any(d.metadata["memory_id"] for d in docs), "a long-term memory, named by its id"

    async def asynchronously() -> list[str]:
        async with AsyncLoftClient(service.base) as aloft:
            found = await LoftRetriever(client=loft, async_client=aloft, user=user, budget=800).ainvoke("velvet sofas")
            history = LoftChatMessageHistory(loft, user, "app-1", async_client=aloft)
            await history.aadd_messages([HumanMessage("And a velvet footstool.")])
            assert [m.content for m in await history.aget_messages()] == ["And a velvet footstool."]
            await history.aclear()
            assert await history.aget_messages() == []
            return [d.page_content for d in found]

    assert any("velvet" in text.lower() for text in asyncio.run(asynchronously()))
