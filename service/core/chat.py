"""Replies: the LLM when one is configured, otherwise an offline responder that answers
from memory and the catalog (and says that it is offline).

:func:`reply` returns the whole answer; :func:`reply_stream` yields it as it is made (the
LLM's tokens as the server streams them, the offline answer in pieces of a few words), for
``POST /v1/chat`` with ``"stream": true``."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from loft_memory.models import CustomerSummary, EntityFact, MemoryFact, PreferenceFact, PurchaseFact
from service.catalog import Catalog
from service.core import recommendations
from service.core.profile import customer_profile
from service.extraction import Extraction
from service.facts import Known
from service.runtime import Runtime

log = logging.getLogger("loft.chat")

OFFLINE_NOTE = "(No language model is configured, so I'm answering from LOFT's memory and catalog.)"

SYSTEM_PROMPT = """You are the assistant of LOFT, a furniture store. Be warm, concise and concrete.
Use what you remember about the customer (below) when it helps; never invent facts about them.
If the memory does not answer a question about the customer, say so.

What LOFT remembers about this customer:
{context}

## Recommendations for this customer (from purchase paths and preferences; suggest from these
## when they ask for ideas, and say why in a few words)
{recommendations}"""

_REMEMBER = re.compile(
    r"\b(what do you (remember|know)|do you remember|who am i|what have i told you|remind me what)\b", re.I
)
_SHOPPING = re.compile(
    r"\b(show|looking for|look for|need|want|have|recommend|suggest|find|browse|any|see|got)\b", re.I
)
_SUGGEST = re.compile(
    r"\b(recommend\w*|suggest\w*|ideas?|what (else )?(should|would|could) i (buy|get)|what goes with|inspire me)\b",
    re.I,
)
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)


async def reply(
    rt: Runtime,
    user: str,
    message: str,
    context: str,
    history: list[dict[str, str]],
    *,
    said: Extraction | None = None,
    known: Known | None = None,
) -> str:
    """The assistant's answer from ``context``, the context's prompt text. ``said``: the
    facts of this very message (so the answer uses them even before the worker has filed
    them); ``known``: the customer's facts the context was built from (the reply says what
    the context says)."""
    if rt.llm is not None:
        try:
            return await _llm_reply(rt, user, message, context, history)
        except Exception as exc:  # the customer still gets an answer
            log.warning("LLM reply failed (%s); answering offline", exc)
    return await offline_reply(rt, user, message, said=said, known=known)


async def _recommendations(rt: Runtime, user: str, *, limit: int = 5, category: str | None = None) -> dict[str, Any]:
    """Recommendations for a reply; an empty answer when Neo4j cannot give them (the reply still goes out)."""
    try:
        return await recommendations.recommend(rt, user, limit=limit, category=category)
    except Exception as exc:
        log.warning("recommendations unavailable for a reply (%s: %s)", type(exc).__name__, exc)
        return {"items": [], "cold_start": True, "explanation": ""}


def recommendations_text(recs: dict[str, Any]) -> str:
    """The prompt section: one line per product with its reasons."""
    if not recs.get("items"):
        return "(none available)"
    lines = [f"({recs['explanation']})"] if recs.get("explanation") else []
    for item in recs["items"]:
        price = f", ${item['price']:,.0f}" if item.get("price") is not None else ""
        why = "; ".join(r["text"] for r in item["reasons"][:3])
        lines.append(f"- {item['name']} ({item['sku']}{price}): {why}")
    return "\n".join(lines)


async def _prompt(
    rt: Runtime, user: str, message: str, context: str, history: list[dict[str, str]]
) -> list[ChatCompletionMessageParam]:
    """The messages for the model: the system prompt with the context and this customer's
    recommendations, the last turns, and this message."""
    recs = await _recommendations(rt, user)
    system = SYSTEM_PROMPT.format(context=context or "(nothing yet)", recommendations=recommendations_text(recs))
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
    messages += [
        {"role": "assistant", "content": turn["content"]}
        if turn["role"] == "assistant"
        else {"role": "user", "content": turn["content"]}
        for turn in history[-10:]
    ]
    messages.append({"role": "user", "content": message})
    return messages


async def _llm_reply(rt: Runtime, user: str, message: str, context: str, history: list[dict[str, str]]) -> str:
    assert rt.llm is not None
    messages = await _prompt(rt, user, message, context, history)
    response = await rt.llm.chat.completions.create(model=rt.settings.llm_model, messages=messages, temperature=0.3)
    text = (response.choices[0].message.content or "").strip()
    if not text:
        raise ValueError("empty completion")
    return text


@dataclass(frozen=True)
class Piece:
    """A part of a reply as it is made. ``reset``: drop what was sent so far (the LLM failed
    mid-answer; the offline answer follows in full)."""

    text: str = ""
    reset: bool = False


# the offline answer is sent a few words at a time, like a model's tokens
OFFLINE_WORDS_PER_PIECE = 3
# a word and the blanks after it (the text's first also takes the blanks before it: only there,
# or a text of blanks would be read again from each of them)
_WORD = re.compile(r"\A\s*+\S++\s*+|\S++\s*+")


def pieces(text: str, words: int = OFFLINE_WORDS_PER_PIECE) -> list[str]:
    """``text`` cut into runs of ``words`` words, whitespace kept: joined, they are ``text``."""
    found = _WORD.findall(text)
    out = ["".join(found[i : i + words]) for i in range(0, len(found), words)]
    rest = text[len("".join(out)) :]  # whitespace-only text, or a tail the pattern left
    if rest:
        out.append(rest)
    return out


async def reply_stream(
    rt: Runtime,
    user: str,
    message: str,
    context: str,
    history: list[dict[str, str]],
    *,
    said: Extraction | None = None,
    known: Known | None = None,
) -> AsyncIterator[Piece]:
    """The answer of :func:`reply`, piece by piece. The LLM's text is what it streams (the
    joined pieces, stripped, are the reply); if it fails before saying anything the offline
    answer follows seamlessly, if it fails mid-answer a ``reset`` piece comes first."""
    if rt.llm is not None:
        sent = False
        try:
            async for text in _llm_stream(rt, user, message, context, history):
                sent = True
                yield Piece(text)
            if sent:
                return
            raise ValueError("empty completion")
        except Exception as exc:  # the customer still gets an answer
            log.warning("LLM reply stream failed (%s); answering offline", exc)
            if sent:
                yield Piece(reset=True)
    for text in pieces(await offline_reply(rt, user, message, said=said, known=known)):
        yield Piece(text)


async def _llm_stream(
    rt: Runtime, user: str, message: str, context: str, history: list[dict[str, str]]
) -> AsyncIterator[str]:
    """The model's tokens as its server streams them; leading whitespace is held back so
    that an answer of only whitespace counts as empty."""
    assert rt.llm is not None
    stream: AsyncStream[ChatCompletionChunk] = await rt.llm.chat.completions.create(
        model=rt.settings.llm_model,
        messages=await _prompt(rt, user, message, context, history),
        temperature=0.3,
        stream=True,
    )
    started = False
    async for chunk in stream:
        if not chunk.choices:
            continue
        text = chunk.choices[0].delta.content or ""
        if not started:
            text = text.lstrip()
            started = bool(text)
        if text:
            yield text


@dataclass(frozen=True)
class _Asked:
    """What a message asks of the offline answer."""

    remember: bool  # "what do you remember about me?"
    suggest: bool  # "any ideas?"
    shopping: bool  # "show me…", "I need…"
    greeting: bool
    categories: list[str]  # the catalog's categories it names, in order


def _read(catalog: Catalog, message: str) -> _Asked:
    return _Asked(
        bool(_REMEMBER.search(message)),
        bool(_SUGGEST.search(message)),
        bool(_SHOPPING.search(message)),
        bool(_GREETING.search(message)),
        catalog.match_categories(message),
    )


async def offline_reply(
    rt: Runtime, user: str, message: str, *, said: Extraction | None = None, known: Known | None = None
) -> str:
    """Deterministic answers: what LOFT remembers, catalog matches ranked by preference,
    or an acknowledgement of what the message told us. The message is read in the CPU pool
    (``Runtime.cpu_long``): a message of 32 KB takes tens of milliseconds to match against
    the catalog, time the event loop owes every other request."""
    if said is None:
        said = await rt.cpu_long(rt.rules.extract, message, at=datetime.now(UTC), role="user")
    profile = _with_turn(_Profile.of(await customer_profile(rt, user, known=known)), said)
    asked = await rt.cpu_long(_read, rt.catalog, message)
    if asked.remember:
        return _remember(profile) + "\n\n" + OFFLINE_NOTE
    categories = asked.categories
    if asked.suggest:
        category = categories[0] if categories else None
        return (
            _suggestions(profile, await _recommendations(rt, user, category=category), category) + "\n\n" + OFFLINE_NOTE
        )
    if categories and asked.shopping:
        return await rt.cpu_long(_products, rt, profile, categories[0], message) + "\n\n" + OFFLINE_NOTE
    return _acknowledge(profile, asked.greeting, said) + "\n\n" + OFFLINE_NOTE


def _suggestions(profile: _Profile, recs: dict[str, Any], category: str | None) -> str:
    items = recs.get("items") or []
    if not items:
        what = f" {category}" if category else ""
        return f"I don't have{what} suggestions for you yet. Tell me what you like, and I'll find some."
    name = profile.name
    lines = [
        (
            "Some ideas for you" + (f", {name}" if name else "") + f" ({recs['explanation'][:1].lower()}"
            f"{recs['explanation'][1:]}):"
        )
    ]
    for item in items:
        why = "; ".join(r["text"] for r in item["reasons"][:2])
        price = f", ${item['price']:,.0f}" if item.get("price") is not None else ""
        lines.append(f"• {item['name']} ({item['sku']}{price}) — {why}")
    return "\n".join(lines)


def _current(profile: _Profile, polarity: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in profile.preferences:
        if p.polarity == polarity and p.valid_to is None:
            out.setdefault(p.attribute, []).append(str(p.value))
    return out


def _remember(profile: _Profile) -> str:
    if not profile.known:
        return "I don't have anything saved about you yet. Tell me what you're looking for and I'll remember it."
    lines = []
    name = profile.name
    lines.append(f"You're {name}." if name else "I don't know your name yet.")
    likes = _current(profile, "prefers")
    dislikes = _current(profile, "dislikes")
    if likes:
        lines.append("You like " + "; ".join(f"{', '.join(v)} {_label(a)}" for a, v in likes.items()) + ".")
    if dislikes:
        lines.append(
            "You're not keen on " + "; ".join(f"{', '.join(v)} {_label(a)}" for a, v in dislikes.items()) + "."
        )
    if profile.purchases:
        lines.append("You bought " + ", ".join(str(p.name) for p in profile.purchases[:5]) + ".")
    if profile.recent_topics:
        lines.append("Recently we talked about " + ", ".join(profile.recent_topics[:5]) + ".")
    people = [e for e in profile.entities if e.type in ("person", "pet", "room", "place")]
    if people:
        lines.append("You mentioned " + ", ".join(f"{e.name} ({e.relation or e.type})" for e in people[:5]) + ".")
    if len(lines) == 1 and not name and profile.memories:
        lines.append("I remember: " + " ".join(m.content for m in profile.memories[:3]))
    return " ".join(lines)


def _label(attribute: str) -> str:
    return {
        "style": "style",
        "material": "(material)",
        "color": "(colour)",
        "category": "furniture",
        "brand": "(brand)",
        "budget": "budget",
    }.get(attribute, attribute)


def _products(rt: Runtime, profile: _Profile, category: str, message: str) -> str:
    prefer = _current(profile, "prefers")
    avoid = _current(profile, "dislikes")
    budget = prefer.pop("budget", None)
    max_price = None
    if budget:
        try:
            max_price = float(budget[-1])
        except ValueError:
            max_price = None
    found = rt.catalog.find(category=category, text=message, prefer=prefer, avoid=avoid, max_price=max_price, limit=5)
    label = category + ("s" if not category.endswith("s") else "")
    if not found:
        return f"I couldn't find any {label} in the catalog right now."
    name = profile.name
    intro = f"Here are some {label}" + (f" picked for you, {name}" if name else "") + ":"
    lines = [intro]
    for product, _, reasons in found:
        why = f" — {', '.join(reasons)}" if reasons else ""
        lines.append(f"• {product.name} ({product.sku}), ${product.price:,.0f}{why}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Profile:
    """What the offline answer knows of the customer (``known``: anything at all)."""

    known: bool = False
    name: str | None = None
    preferences: tuple[PreferenceFact, ...] = ()
    purchases: tuple[PurchaseFact, ...] = ()
    recent_topics: tuple[str, ...] = ()
    entities: tuple[EntityFact, ...] = ()
    memories: tuple[MemoryFact, ...] = ()

    @classmethod
    def of(cls, summary: CustomerSummary | None) -> _Profile:
        if summary is None:
            return cls()
        return cls(
            True,
            summary.name,
            tuple(summary.preferences),
            tuple(summary.purchases),
            tuple(summary.recent_topics),
            tuple(summary.entities),
            tuple(summary.memories),
        )


def _with_turn(profile: _Profile, said: Extraction) -> _Profile:
    """The profile as it will be once this turn is filed: its name and preferences on top."""
    if said.is_empty():
        return profile
    prefs = list(profile.preferences)
    for p in said.preferences:
        if p.replaces:  # "actually I prefer walnut now": the other current values go
            prefs = [q for q in prefs if not (q.attribute == p.attribute and q.polarity == p.polarity)]
        prefs = [q for q in prefs if not (q.attribute == p.attribute and str(q.value) == p.value)]
        prefs.append(
            PreferenceFact(
                rel="PREFERS" if p.polarity == "prefers" else "DISLIKES",
                polarity=p.polarity,
                attribute=p.attribute,
                value=p.value,
                strength=p.strength,
                valid_to=None,
            )
        )
    return replace(profile, known=True, name=said.customer_name or profile.name, preferences=tuple(prefs))


def _acknowledge(profile: _Profile, greeting: bool, facts: Extraction) -> str:
    name = facts.customer_name or profile.name
    parts = []
    if greeting or facts.customer_name:
        parts.append(
            f"Hi {name}, nice to meet you!" if facts.customer_name else (f"Hi {name}!" if name else "Hi there!")
        )
    noted = [f"{p.value} ({p.attribute})" for p in facts.preferences if p.polarity == "prefers"]
    if noted:
        parts.append("I'll remember that you like " + ", ".join(noted) + ".")
    disliked = [p.value for p in facts.preferences if p.polarity == "dislikes"]
    if disliked:
        parts.append("Noted — I'll steer clear of " + ", ".join(disliked) + ".")
    if facts.purchases:
        parts.append(
            "Thanks for letting me know about your " + ", ".join(p.product_name for p in facts.purchases) + "."
        )
    if not parts:
        parts.append("Got it — I've saved that to your history.")
    parts.append("Ask me to show you sofas, tables or anything else from the catalog.")
    return " ".join(parts)
