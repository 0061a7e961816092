"""LoCoMo retrieval benchmark: evidence recall and answer-in-context of /memory/context against turn-level baselines.

    python -m bench.locomo --data '../shared/bench/locomo/*.json' --json
    python -m bench.locomo --store /tmp/locomo-store --misses /tmp/misses.jsonl   # a fast loop

``--store DIR`` keeps the stack and the ingested conversations in DIR and leaves its
servers running: the next run with the same DIR skips ingestion (a conversation is one
customer per file content) and only re-runs the retrievers, which is what a change to
retrieval needs (a change to ingestion needs a new DIR). ``--misses FILE`` writes the
system's result per question at 1000 tokens (the gold turns it missed, with their text;
whether the answer is in the context) as JSON lines. ``--set FIELD=JSON`` overrides a field
of the preset's ``RetrievalConfig`` for the run (``--set other_speaker_weight=1``), so a
variant is measured without editing code. Next to the context's wall time (``context_ms``)
the output gives this process's CPU per context (``context_cpu_ms``: every thread, the
query embedding included, PostgreSQL's not), steadier than wall time on a shared machine.

For each conversation a fresh customer is created and every turn is ingested through the
service's own path (stored as a message at its session's date, queued, processed by the
worker: embeddings, extraction, graph, memories, summaries). Both speakers are stored as
role "user" with their names as ``speaker`` (they are two people, not a customer and the
assistant); a shared photo becomes " [shares a photo: <caption>]". The derived
annotations (observation, session_summary, event_summary) are never read.

Then, for every question of categories 1-4, the same code that serves
``/memory/context`` (``Retriever.context``) is asked at budgets 500, 1000 and 2000, as of
the end of the conversation's last session (relative dates resolve against it), and
evidence recall is scored from the provenance of the returned items (message ids mapped
back to the turns' ``dia_id``). In the same run, on the same turns and budgets: BM25 over
turns, dense all-MiniLM-L6-v2 over turns, and their reciprocal-rank fusion (k=60), each
packed greedily into the budget with the same line format. One JSON object on stdout, a
table on stderr.

Evidence recall trusts provenance: a turn counts as recalled when an item cites it, even if
the item's text was clipped to a fragment that lost the answer. So a second metric,
**answer-in-context**, looks at the text only. A question of categories 1-4 is eligible
when its gold answer, normalised (str(), straight quotes, case-folded, whitespace
collapsed, surrounding punctuation stripped), is short (at most 5 words and 40
characters), not generic (at least 3 characters and one word that is not a stop word,
yes/no, number or month name), occurs as whole words in at least one of its gold turns as
ingested (caption included), and occurs in at most 5 turns of its conversation. It scores
1 when that answer occurs as whole words, within one line, in the normalised context text
(the system's ``Context.text``; for a baseline, its packed lines joined by newlines), else
0. Reported per category and overall at every budget for the system and every baseline,
with the number of eligible questions and why the others are not (the rules and their
reasons are spelled out above ``answer_eligibility``).

A whole answer is rarely eligible when it is a list ("Pride parade, school speech, support
group": too long, and said in three turns), so answer-in-context says little about
multi-hop questions (11 of 142 eligible on the shared files). A third metric, **answer
items in context**, splits every gold answer into its items (at commas, semicolons, "&"
and the word "and"; ``answer_items``), keeps the items eligible under the same rules,
and scores a question by the share of its eligible items that occur in the text; a
question with none is not counted. A one-item answer scores as answer-in-context does.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import json
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.common import bench_stack, log, percentiles
from service.retrieval.config import CHARS_PER_TOKEN  # the baselines' budgets count as the system's do

BUDGETS = (500, 1000, 2000)
CATEGORIES = ("1", "2", "3", "4")
DEFAULT_DATA = str(Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "locomo" / "*.json")
RRF_K = 60


# -- data ------------------------------------------------------------------------------------


def parse_when(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> aware datetime (UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def load_conversation(path: str) -> dict:
    with open(path) as f:
        data = json.load(f)
    conv = data.get("conversation", data)  # the original release nests it
    sessions = []
    n = 1
    while f"session_{n}" in conv:
        turns = conv[f"session_{n}"]
        when = conv.get(f"session_{n}_date_time")
        if turns and when:
            sessions.append((n, parse_when(when), turns))
        n += 1
    qa = data.get("qa", [])
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"name": Path(path).stem, "sessions": sessions, "qa": qa, "digest": digest}


def turn_text(turn: dict) -> str:
    text = turn.get("text", "").strip()
    caption = turn.get("blip_caption")
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


# -- answer-in-context -----------------------------------------------------------------------
#
# Evidence recall trusts provenance: a turn counts as recalled when an item cites it, even
# if the item's text was clipped to a fragment that lost the answer. Answer-in-context asks
# the text itself. A question (categories 1-4, with at least one gold turn) is *eligible*
# when its gold ``answer``, normalised, is
#
#   1. short: at most MAX_ANSWER_WORDS words and MAX_ANSWER_CHARS characters. Short gold
#      answers are names, places, objects, titles, short phrases ("Woodhaven", "coconut
#      milk", "Cyberpunk 2077"): the fact itself, so their presence in the text is the
#      fact's presence. Long answers are paraphrases or whole sentences; when one appears
#      verbatim it is most of a turn, and a context that keeps the fact but shortens the
#      sentence would wrongly score 0;
#   2. not generic: at least MIN_ANSWER_CHARS characters, and at least one word that is not
#      a stop word, "yes"/"no"-like word, number (digits or a number word up to twenty)
#      or month name. "yes", "no", "that", "three", "2022", "May 2023" carry no evidence
#      of their own, and every context line starts with a date stamp ("[8 May 2023]");
#   3. verbatim in evidence: it occurs, as whole words, in the text of at least one of the
#      question's gold turns as ingested (``turn_text``: a shared photo's caption
#      included). Answers the speakers never said (dates resolved from "last week",
#      counts, inferences) cannot be looked for in the text;
#   4. specific: it occurs, as whole words, in at most MAX_ANSWER_TURNS turns of its
#      conversation. An answer the speakers use all the time ("amazing", "basketball",
#      "turtles") would be found in almost any context, whatever was retrieved.
#
# Normalisation (answer and texts alike): ``str()`` (numeric answers become their digits),
# curly quotes and apostrophes made straight, en/em dashes made "-", Unicode case-folded,
# runs of spaces and tabs collapsed to one space (an evidence turn's line breaks too; a
# context's line breaks are kept, so an answer never matches across two lines); the
# answer alone also has its surrounding punctuation stripped ('"Inception"' -> inception,
# 'Turtles.' -> turtles). An eligible question scores 1 at a budget when the normalised
# answer occurs in the normalised context text as whole words (not preceded or followed
# by a letter, digit or underscore), else 0.

MAX_ANSWER_WORDS = 5
MAX_ANSWER_CHARS = 40
MIN_ANSWER_CHARS = 3
MAX_ANSWER_TURNS = 5

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty once twice first second third"
)
_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
_GENERIC_WORDS = frozenset(
    (
        "a an the and or but nor if of to in on at for with from by about as is are was were be been being "
        "do does did done what when where who whom which why how i you he she it we they me him her us them "
        "my your his its our their this that these those there here have has had not so than then too very "
        "can could would should will just also into over after before up down out all any some none "
        "yes no yeah nope maybe perhaps sure true false both neither either ok okay " + _NUMBER_WORDS + " " + _MONTHS
    ).split()
)
_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


def normalise_text(text: str) -> str:
    """Straight quotes, case-folded, spaces collapsed within each line (line breaks kept)."""
    text = str(text).translate(_QUOTES).casefold()
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def normalise_answer(answer: object) -> str:
    """A gold answer as matched: normalised, on one line, surrounding punctuation stripped."""
    text = " ".join(normalise_text(str(answer)).split())
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


def is_short(answer: str) -> bool:
    """At most MAX_ANSWER_WORDS words and MAX_ANSWER_CHARS characters (normalised answer)."""
    return len(answer.split()) <= MAX_ANSWER_WORDS and len(answer) <= MAX_ANSWER_CHARS


def is_generic(answer: str) -> bool:
    """Too short, or not one word beyond stop words, yes/no, numbers and month names."""
    if len(answer) < MIN_ANSWER_CHARS:
        return True
    return all(w.isdigit() or w in _GENERIC_WORDS for w in re.findall(r"\w+", answer))


def contains_answer(text: str, answer: str) -> bool:
    """Whether the normalised ``answer`` occurs in ``text`` as whole words, within one line."""
    if not answer:
        return False
    return re.search(r"(?<!\w)" + re.escape(answer) + r"(?!\w)", normalise_text(text)) is not None


def answer_eligibility(
    answer: object, evidence_texts: list[str], conversation_texts: list[str]
) -> tuple[str | None, str]:
    """(normalised answer, "eligible") or (None, the first rule it fails).

    ``evidence_texts``: the question's gold turns as ingested; ``conversation_texts``: every
    turn of its conversation as ingested. Reasons, in the order checked: "no_answer",
    "long", "generic", "not_in_evidence", "frequent".
    """
    if answer is None or isinstance(answer, bool) or (isinstance(answer, str) and not answer.strip()):
        return None, "no_answer"
    norm = normalise_answer(answer)
    if not is_short(norm):
        return None, "long"
    if is_generic(norm):
        return None, "generic"
    if not any(contains_answer(" ".join(t.split()), norm) for t in evidence_texts):
        return None, "not_in_evidence"
    if sum(1 for t in conversation_texts if contains_answer(" ".join(t.split()), norm)) > MAX_ANSWER_TURNS:
        return None, "frequent"
    return norm, "eligible"


_ITEM_SEPARATOR = re.compile(r"\s*(?:[,;&]|\band\b)\s*", re.IGNORECASE)


def answer_items(answer: object, evidence_texts: list[str], conversation_texts: list[str]) -> list[str]:
    """The eligible items of a gold answer (:func:`answer_eligibility` on each part of it
    split at commas, semicolons, "&" and "and"), normalised, each once, in order."""
    if answer is None or isinstance(answer, bool):
        return []
    items: list[str] = []
    for part in _ITEM_SEPARATOR.split(str(answer)):
        item, _ = answer_eligibility(part, evidence_texts, conversation_texts) if part.strip() else (None, "")
        if item is not None and item not in items:
            items.append(item)
    return items


def items_found(text: str, items: list[str]) -> float:
    """The share of ``items`` that occur in ``text`` as whole words (see :func:`contains_answer`)."""
    return sum(contains_answer(text, item) for item in items) / len(items)


# -- baselines -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def pack(order: list[int], lines: list[str], budget: int) -> list[int]:
    limit = budget * CHARS_PER_TOKEN
    used, chosen = 0, []
    for i in order:
        cost = len(lines[i]) + 1
        if used + cost > limit:
            continue
        chosen.append(i)
        used += cost
    return chosen


def rrf(*rankings: list[int], k: int = RRF_K) -> list[int]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking):
            scores[i] = scores.get(i, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda i: -scores[i])


# -- the run ---------------------------------------------------------------------------------


async def run(
    paths: list[str],
    preset: str,
    store: Path | None = None,
    misses: Path | None = None,
    overrides: dict | None = None,
) -> dict:
    from rank_bm25 import BM25Okapi
    from tqdm import tqdm

    from service.postgres import history
    from service.retrieval import PRESETS, Retriever
    from service.runtime import Runtime
    from service.worker import Worker

    conversations = [load_conversation(p) for p in paths]
    async with bench_stack(store=store) as settings:
        rt = await Runtime.open(settings)
        try:
            worker = Worker(rt)
            retriever = Retriever(rt)
            total_turns = sum(len(t) for c in conversations for _, _, t in c["sessions"])
            bar = tqdm(total=total_turns, desc="ingest", unit="msg", file=sys.stderr, mininterval=2.0)
            ingest_started = time.perf_counter()
            ingested_turns = 0
            for conv in conversations:
                turns_in = sum(len(t) for _, _, t in conv["sessions"])
                if store is None:
                    conv["user"] = f"locomo-{conv['name']}-{uuid.uuid4().hex[:6]}"
                else:  # one customer per file's content: a kept store is reused while the file is unchanged
                    conv["user"] = f"locomo-{conv['name']}-{conv['digest'][:12]}"
                    stored = await rt.pool.fetchval(
                        "SELECT count(*) FROM messages WHERE user_identifier = $1", conv["user"]
                    )
                    if stored == turns_in:
                        bar.update(turns_in)
                        continue
                    if stored:
                        sys.exit(f"{store}: {conv['user']} holds {stored} of {turns_in} turns; delete the store")
                ingested_turns += turns_in
                for n, when, turns in conv["sessions"]:
                    session_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{conv['user']}:{n}")
                    async with rt.pool.acquire() as conn, conn.transaction():
                        await history.create_session(conn, conv["user"], session_id, at=when, channel="import")
                        await history.add_messages(
                            conn,
                            conv["user"],
                            session_id,
                            [
                                history.NewMessage(
                                    "user",
                                    turn_text(t),
                                    when + timedelta(seconds=i),
                                    speaker=t["speaker"],
                                    external_id=t["dia_id"],
                                )
                                for i, t in enumerate(turns)
                            ],
                            summary_idle_s=0,
                        )
                    # the worker keeps up as turns arrive, the way a live import runs
                    await worker.drain()
                    bar.update(len(turns))
            await worker.drain()
            ingest_s = time.perf_counter() - ingest_started
            bar.close()

            config = PRESETS[preset]
            if overrides:  # validated as the config's own fields
                config = type(config).model_validate(config.model_dump() | overrides)
            names = ("system", "bm25", "dense", "rrf")
            scores = {str(b): {name: {c: [] for c in CATEGORIES} for name in names} for b in BUDGETS}
            # answer-in-context: 0/1 per eligible question; plus, for the system, eligible
            # questions where an item cites a gold turn that holds the answer but the text lacks it
            aic = {str(b): {name: {c: [] for c in CATEGORIES} for name in names} for b in BUDGETS}
            cited_not_in_text = {str(b): 0 for b in BUDGETS}
            # answer items in context: the share of a question's eligible answer items in the text
            aii = {str(b): {name: {c: [] for c in CATEGORIES} for name in names} for b in BUDGETS}
            eligibility: dict[str, int] = {}
            context_ms: list[float] = []
            context_cpu_ms: list[float] = []  # this process's CPU (all its threads) per context
            per_question: list[dict] | None = [] if misses is not None else None
            n_questions = 0
            qbar = tqdm(
                total=sum(1 for c in conversations for q in c["qa"] if str(q.get("category")) in CATEGORIES),
                desc="questions",
                unit="q",
                file=sys.stderr,
                mininterval=2.0,
            )
            for conv in conversations:
                rows = await rt.pool.fetch(
                    "SELECT id, external_id, speaker, content, created_at FROM messages WHERE user_identifier = $1 ORDER BY id",
                    conv["user"],
                )
                dia_of = {r["id"]: r["external_id"] for r in rows}
                lines = [
                    f"[{r['created_at'].day} {r['created_at']:%b %Y}] {r['speaker']}: {r['content']}" for r in rows
                ]
                dia = [r["external_id"] for r in rows]
                bm25 = BM25Okapi([tokenize(f"{r['speaker']} {r['content']}") for r in rows])
                turn_vecs = rt.embedder.embed([f"{r['speaker']}: {r['content']}" for r in rows])
                valid = set(dia)
                ingested = {t["dia_id"]: turn_text(t) for _, _, turns in conv["sessions"] for t in turns}
                # the questions are asked after the conversation's last session ("as_of")
                asked = max(when + timedelta(seconds=len(turns)) for _, when, turns in conv["sessions"])
                conversation_texts = list(ingested.values())
                for q in conv["qa"]:
                    category = str(q.get("category"))
                    if category not in CATEGORIES:
                        continue
                    gold = {
                        e.strip() for ev in q.get("evidence", []) for e in re.split(r"[;,\s]+", ev) if e.strip()
                    } & valid
                    qbar.update(1)
                    if not gold:
                        continue
                    n_questions += 1
                    answer, reason = answer_eligibility(
                        q.get("answer"), [ingested[g] for g in sorted(gold)], conversation_texts
                    )
                    eligibility[reason] = eligibility.get(reason, 0) + 1
                    answer_turns = {
                        g for g in gold if answer and contains_answer(" ".join(ingested[g].split()), answer)
                    }
                    items = answer_items(q.get("answer"), [ingested[g] for g in sorted(gold)], conversation_texts)
                    question = q["question"]
                    qvec = rt.embedder.embed_query(question)
                    bm25_order = list(np.argsort(-bm25.get_scores(tokenize(question)), kind="stable"))
                    dense_order = list(np.argsort(-(turn_vecs @ qvec), kind="stable"))
                    fused = rrf(bm25_order, dense_order)
                    for budget in BUDGETS:
                        started, cpu_started = time.perf_counter(), time.process_time()
                        ctx = await retriever.context(
                            conv["user"],
                            question,
                            budget=budget,
                            config=config,
                            preset=preset,
                            track_access=False,
                            as_of=asked,
                        )
                        context_ms.append((time.perf_counter() - started) * 1000)
                        context_cpu_ms.append((time.process_time() - cpu_started) * 1000)
                        got = {dia_of.get(m) for item in ctx.items for m in item["provenance"]["message_ids"]}
                        b = str(budget)
                        scores[b]["system"][category].append(len(gold & got) / len(gold))
                        found = contains_answer(ctx.text, answer) if answer else None
                        if answer:
                            aic[b]["system"][category].append(float(found))
                            if not found and answer_turns & got:
                                cited_not_in_text[b] += 1
                        if items:
                            aii[b]["system"][category].append(items_found(ctx.text, items))
                        if per_question is not None and budget == 1000:
                            per_question.append(
                                {
                                    "conversation": conv["name"],
                                    "category": category,
                                    "question": question,
                                    "answer": q.get("answer"),
                                    "answer_in_context": found,
                                    "answer_items": {i: contains_answer(ctx.text, i) for i in items},
                                    "gold": sorted(gold),
                                    "missing": {g: ingested[g] for g in sorted(gold - got)},
                                    "cited": sorted(x for x in got if x),
                                    "text": ctx.text,
                                }
                            )
                        for name, order in (("bm25", bm25_order), ("dense", dense_order), ("rrf", fused)):
                            packed = pack(order, lines, budget)
                            chosen = {dia[i] for i in packed}
                            scores[b][name][category].append(len(gold & chosen) / len(gold))
                            text = "\n".join(lines[i] for i in packed)
                            if answer:
                                aic[b][name][category].append(float(contains_answer(text, answer)))
                            if items:
                                aii[b][name][category].append(items_found(text, items))
            qbar.close()
        finally:
            await rt.close()
    if misses is not None and per_question is not None:
        misses.write_text("".join(json.dumps(row) + "\n" for row in per_question))

    def summarise(per_cat: dict[str, list[float]]) -> dict:
        all_values = [v for vs in per_cat.values() for v in vs]
        return {
            "overall": round(float(np.mean(all_values)), 4) if all_values else 0.0,
            "by_category": {c: round(float(np.mean(v)), 4) if v else 0.0 for c, v in per_cat.items()},
        }

    def summarise_aic(per_cat: dict[str, list[float]]) -> dict:
        # like summarise, but a category without eligible questions is null, not 0
        all_values = [v for vs in per_cat.values() for v in vs]
        return {
            "overall": round(float(np.mean(all_values)), 4) if all_values else None,
            "by_category": {c: round(float(np.mean(v)), 4) if v else None for c, v in per_cat.items()},
        }

    some_budget = str(BUDGETS[0])
    return {
        "questions": n_questions,
        "budgets": {b: {name: summarise(per) for name, per in by_name.items()} for b, by_name in scores.items()},
        "context_ms": percentiles(context_ms),
        "context_cpu_ms": percentiles(context_cpu_ms),
        "ingest_messages_per_s": round(ingested_turns / ingest_s, 1) if ingested_turns else None,
        "answer_in_context": {
            "definition": (
                f"share of eligible questions whose normalised gold answer occurs as whole words in the context text; "
                f"eligible: categories 1-4, answer of at most {MAX_ANSWER_WORDS} words and {MAX_ANSWER_CHARS} characters, "
                f"at least {MIN_ANSWER_CHARS} characters and one word that is not a stop word, yes/no, number or month, "
                f"verbatim in a gold turn as ingested, and in at most {MAX_ANSWER_TURNS} turns of its conversation"
            ),
            "questions": sum(len(v) for v in aic[some_budget]["system"].values()),
            "questions_by_category": {c: len(v) for c, v in aic[some_budget]["system"].items()},
            "eligibility": eligibility,
            "budgets": {b: {name: summarise_aic(per) for name, per in by_name.items()} for b, by_name in aic.items()},
            "system_cited_answer_turn_not_in_text": cited_not_in_text,
        },
        "answer_items_in_context": {
            "definition": (
                "mean over questions of the share of the gold answer's eligible items (split at commas, semicolons, "
                "'&' and 'and'; each eligible under the answer-in-context rules) that occur as whole words in the "
                "context text; questions without an eligible item are not counted"
            ),
            "questions": sum(len(v) for v in aii[some_budget]["system"].values()),
            "questions_by_category": {c: len(v) for c, v in aii[some_budget]["system"].items()},
            "budgets": {b: {name: summarise_aic(per) for name, per in by_name.items()} for b, by_name in aii.items()},
        },
    }


def _cell(v: float | None, width: int) -> str:
    return f"{v:>{width}.3f}" if v is not None else f"{'-':>{width}}"


def _rows(title: str, budgets: dict) -> list[str]:
    """One metric's block of the table: a title, then a row per budget and retriever."""
    out = [
        "",
        title,
        "",
        f"{'budget':>6} {'retriever':<8} {'overall':>8} " + " ".join(f"{'cat' + c:>6}" for c in CATEGORIES),
    ]
    for budget, by_name in budgets.items():
        for name, r in by_name.items():
            out.append(
                f"{budget:>6} {name:<8} {_cell(r['overall'], 8)} "
                + " ".join(_cell(r["by_category"][c], 6) for c in CATEGORIES)
            )
    return out


def _counts(by_category: dict[str, int]) -> str:
    return ", ".join(f"cat{c} {n}" for c, n in by_category.items())


def table(result: dict) -> str:
    a, items = result["answer_in_context"], result["answer_items_in_context"]
    out = _rows(f"LoCoMo evidence recall ({result['questions']} questions)", result["budgets"])[1:]
    out += _rows(
        f"LoCoMo answer-in-context ({a['questions']} eligible questions: {_counts(a['questions_by_category'])})",
        a["budgets"],
    )
    out.append(
        "system cites a gold turn holding the answer but its text lacks it: "
        + ", ".join(f"{n} at {b}" for b, n in a["system_cited_answer_turn_not_in_text"].items())
    )
    out += _rows(
        f"LoCoMo answer items in context ({items['questions']} questions with an eligible item: "
        f"{_counts(items['questions_by_category'])})",
        items["budgets"],
    )
    out.append("")
    out.append(
        f"context p50 {result['context_ms']['p50']} ms, p95 {result['context_ms']['p95']} ms "
        f"(CPU in this process p50 {result['context_cpu_ms']['p50']} ms); "
        f"ingest {result['ingest_messages_per_s'] or '(reused)'} msg/s"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="glob of LoCoMo json files")
    parser.add_argument("--preset", default="default", help="retrieval preset")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    parser.add_argument(
        "--store",
        type=Path,
        help="keep the stack and the ingested conversations in this directory and reuse them on the next run "
        "(servers left running; stop them with LOFT_DATA_DIR=<dir> loftmem stop)",
    )
    parser.add_argument(
        "--misses", type=Path, help="write the system's result per question at 1000 tokens here (JSON lines)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a field of the preset's RetrievalConfig, e.g. --set neighbour_width=2 --set 'messages_speaker={\"limit\": 0}'",
    )
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    paths = sorted(glob.glob(args.data))
    if not paths:
        sys.exit(f"no LoCoMo files match {args.data!r}")
    result = asyncio.run(run(paths, args.preset, args.store, args.misses, overrides))
    result["config_overrides"] = overrides
    log(table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
