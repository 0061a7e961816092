"""What hostile chat messages do to everyone else's requests.

    python -m bench.hostile --json [--size 32768] [--workers 1] [--patterns review,fillers,…]
                                   [--probe-seconds 8] [--timeout 300]

Against ``loftmem serve --workers N`` (one process by default: what a hostile message does to
the process that answers it; with N processes an attacker needs N messages at once), no
worker (the measure is the API's). Two probes run in a loop, each request after the last:
``GET /memory/status`` and ``GET /memory/context/<another customer>`` (a question about
their history). First for ``--probe-seconds`` with nothing else going on (``quiet``), then
while the hostile messages are sent to ``POST /v1/chat`` one after another, each from a
customer of its own (``hostile``). Reported per probe: p50 and p99 (ms) of both phases and
their ratio (``hostile_over_quiet``); per hostile message its status and latency; per phase the
largest ``loft_event_loop_lag_seconds`` of the API process (its worst loop lag over the last
10 s, scraped every half second; ``null`` for a build without it). The probes run for
``--warm-seconds`` first, and those requests are not counted.

The hostile messages (``hostile_messages``): the 20 KB message of the security review
("i " + "just " * 4000 + "x"), and one message per shape of text that made a pattern of
the rule extractor backtrack, at ``--size`` characters (by default the largest message a
chat turn may carry, 32 KB; a body of 64 KB holds no more, JSON escapes counted): a
subject and a run of fillers, a name that is also a filler, a stance repeated before no
"you", runs of blanks and line breaks, blanks after "order" and after a budget, groups of
digits, runs of dots, clause cuts, cues with catalog words, closing questions. A build
whose patterns are quadratic (or worse) can take hours on some of them: ``--patterns``
picks the shapes, ``--timeout`` (per message) gives up on one (and the probes that wait on
its process are left to finish).

Progress on stderr, one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
import numpy as np

from bench.common import bench_stack, log
from bench.latency import Server

MESSAGE_BYTES = 32 * 1024  # the largest message a chat turn may carry (service.schemas.MAX_MESSAGE_BYTES)
BODY_BYTES = 64 * 1024  # the largest body (LOFT_MAX_BODY_BYTES)

# (text before, the unit repeated, text after)
SHAPES: dict[str, tuple[str, str, str]] = {
    "fillers": ("i ", "just ", "x"),  # a subject, fillers and no cue: CUE_RE's two filler runs
    "name_fillers": ("", "Would ", "x"),  # "Would" is a name and a filler: every one a new start
    "small_talk": ("", "i glad ", "x"),  # a stance and no "you" after it: SMALL_TALK's [^.]*
    "blanks": ("a", " ", "b"),  # a clause cut, a span end, a purchase end: entered anywhere in a run
    "line_breaks": ("a", "\n", "b"),
    "order_blanks": ("I bought the Arlo sofa, order", " ", "#A1"),  # ORDER_ID's four blank runs
    "budget_blanks": ("our budget is $3000", " ", ", please"),  # NUMBER's blank runs
    "digit_groups": ("$1", ",111", ""),  # a price started again at every group
    "dots": ("I love oak", ".", " x"),  # closing marks
    "clause_cuts": ("", ", and my wife x", ""),  # a subject cut without a verb
    "cues_and_mentions": ("", "I love oak ", ""),  # a cue per catalog word
    "questions": ("I love it.", " Really?", " x"),  # closing questions
}
REVIEW_MESSAGE = "i " + "just " * 4000 + "x"  # 20 KB, under the 64 KB body limit


def _fits(message: str) -> bool:
    body = json.dumps({"user_identifier": "x" * 32, "message": message})
    return len(message.encode()) <= MESSAGE_BYTES and len(body.encode()) <= BODY_BYTES - 256


def hostile_messages(size: int = MESSAGE_BYTES) -> dict[str, str]:
    """The review's message and one message per shape, at ``size`` characters at most (less when
    a body could not carry it)."""
    messages = {"review": REVIEW_MESSAGE}
    for name, (head, unit, tail) in SHAPES.items():
        count = max(1, (size - len(head) - len(tail)) // len(unit))
        while not _fits(text := head + unit * count + tail):
            count = count * 9 // 10
        messages[name] = text
    return messages


@dataclass
class Probe:
    """One kind of request, sent in a loop: latencies (ms) by phase."""

    name: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    ms: dict[str, list[float]] = field(default_factory=lambda: {"warm": [], "quiet": [], "hostile": []})
    errors: int = 0

    async def run(self, client: httpx.AsyncClient, phase: list[str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            current = phase[0]
            started = time.perf_counter()
            try:
                r = await client.get(self.path, params=self.params)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            took = (time.perf_counter() - started) * 1000
            if not ok:
                self.errors += 1
            # a probe that started quiet and ended under a hostile message counts as hostile
            self.ms[current if current == phase[0] else phase[0]].append(took)


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    arr = np.asarray(values)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p99": round(float(np.percentile(arr, 99)), 1),
        "max": round(float(arr.max()), 1),
    }


def _lag(metrics: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith("loft_event_loop_lag_seconds "):
            return float(line.split()[1])
    return None


async def watch_lag(client: httpx.AsyncClient, phase: list[str], stop: asyncio.Event, worst: dict[str, float]) -> None:
    """The largest event-loop lag gauge seen in each phase."""
    while not stop.is_set():
        current = phase[0]
        try:
            lag = _lag((await client.get("/metrics")).text)
        except httpx.HTTPError:
            lag = None
        if lag is not None and current in worst:
            worst[current] = max(worst[current], lag)
        await asyncio.sleep(0.5)


async def seed(client: httpx.AsyncClient, user: str) -> None:
    """A customer with some history to ask about."""
    turns = [
        "Hi, I'm Dana. We just moved into a flat in Leeds.",
        "I love walnut and mid-century furniture, but I really can't stand glass tables.",
        "Our budget for the living room is about $3,000.",
        "I bought the Arlo sofa last month and we love it.",
        "My wife Emma is after a reading chair for the study.",
    ]
    r = await client.post(
        f"/v1/sessions/{user}/messages",
        json={"messages": [{"role": "user", "content": t} for t in turns]},
    )
    r.raise_for_status()


async def _hostile_phase(
    client: httpx.AsyncClient, messages: dict[str, str], phase: list[str], sent: dict[str, dict]
) -> None:
    """The hostile messages, one after another, each from a customer of its own."""
    phase[0] = "hostile"
    for name, text in messages.items():
        user = f"bench-hostile-{name}-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        try:
            r = await client.post("/v1/chat", json={"user_identifier": user, "message": text})
            status: int | str = r.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        took = round((time.perf_counter() - started) * 1000, 1)
        sent[name] = {"chars": len(text), "status": status, "ms": took}
        log(f"hostile {name}: {status} in {took} ms")


async def run(args: argparse.Namespace) -> dict:
    messages = hostile_messages(args.size)
    if args.patterns:
        wanted = args.patterns.split(",")
        unknown = set(wanted) - set(messages)
        if unknown:
            raise SystemExit(f"unknown patterns {sorted(unknown)}; known: {sorted(messages)}")
        messages = {name: messages[name] for name in wanted}
    async with bench_stack(heap="768m") as settings:
        server = Server(settings, args.workers)
        try:
            other = f"bench-other-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(base_url=server.base, timeout=args.timeout) as client:
                await seed(client, other)
                question = "What did Dana say about the budget for the living room and the sofa?"
                probes = [
                    Probe("status", "/memory/status"),
                    Probe("context", f"/memory/context/{other}", {"query": question}),
                ]
                for probe in probes:  # warm: the first context loads what every later one reuses
                    await client.get(probe.path, params=probe.params)
                phase, stop = ["warm"], asyncio.Event()
                lag = {"quiet": 0.0, "hostile": 0.0}
                sent: dict[str, dict] = {}
                running = [asyncio.create_task(p.run(client, phase, stop)) for p in probes]
                async with httpx.AsyncClient(base_url=server.base, timeout=args.timeout) as scraper:
                    running.append(asyncio.create_task(watch_lag(scraper, phase, stop, lag)))
                    log(f"warm: probing for {args.warm_seconds} s")
                    await asyncio.sleep(args.warm_seconds)
                    phase[0] = "quiet"
                    log(f"quiet: probing for {args.probe_seconds} s")
                    await asyncio.sleep(args.probe_seconds)
                    await _hostile_phase(client, messages, phase, sent)
                    stop.set()
                    await asyncio.gather(*running)
                try:
                    has_gauge = _lag((await client.get("/metrics")).text) is not None
                except httpx.HTTPError:  # the process did not survive a hostile message
                    has_gauge = False
        finally:
            server.stop()
    report = {}
    for probe in probes:
        quiet, hostile = summary(probe.ms["quiet"]), summary(probe.ms["hostile"])
        report[probe.name] = {
            "quiet": quiet,
            "hostile": hostile,
            "hostile_over_quiet": {
                k: round(hostile[k] / quiet[k], 2) if quiet[k] else None for k in ("p50", "p99", "max")
            },
            "errors": probe.errors,
        }
    return {
        "benchmark": "hostile",
        "api_workers": args.workers,
        "size": args.size,
        "probes": report,
        "hostile_messages": sent,
        "event_loop_lag_s": lag if has_gauge else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=MESSAGE_BYTES, help="characters per hostile message")
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    parser.add_argument("--patterns", default="", help=f"comma-separated, of: review,{','.join(SHAPES)}")
    parser.add_argument("--probe-seconds", type=float, default=8.0, help="the quiet phase")
    parser.add_argument("--warm-seconds", type=float, default=3.0, help="probes before the quiet phase, not counted")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
