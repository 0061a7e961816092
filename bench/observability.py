"""What the request log line and the request metrics cost per request (no stores needed).

    python -m bench.observability --json [--n 20000 --rounds 7]

Times, in one process and side by side, what ``RequestId`` adds after each response:
nothing (baseline: the route lookup only), the Prometheus counters and histogram alone,
and the full step (metrics + one log line) as text and as JSON, written to /dev/null.
Reported: the median over rounds of microseconds per request, and each against the
context route's p50 on this machine (docs/benchmarks.md: ~7-11 ms), as a share.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from types import SimpleNamespace

from service import logs, metrics
from service.api.middleware import _access
from service.core.principal import Principal, Role

CONTEXT_P50_MS = 9.0  # between the chat-like and cold context p50s of docs/benchmarks.md


def _scope() -> dict:
    route = SimpleNamespace(path="/memory/context/{user_identifier}")
    app = SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(erasure_key=b"k" * 32)))
    return {
        "type": "http",
        "method": "GET",
        "route": route,
        "app": app,
        "path_params": {"user_identifier": "sarah"},
        "state": {"principal": Principal("backend", Role.CHAT)},
    }


def _time(step, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - started) / n * 1e6


def run(n: int, rounds: int) -> dict:
    scope = _scope()
    sink = open("/dev/null", "w")  # noqa: SIM115 (held for the whole run)
    results: dict[str, list[float]] = {"baseline": [], "metrics_only": [], "metrics_and_text_log": [], "json_log": []}

    def baseline() -> None:
        getattr(scope.get("route"), "path", None)

    def metrics_only() -> None:
        metrics.observe_request("GET", getattr(scope.get("route"), "path", None), 200, 0.01)

    def full() -> None:
        _access(scope, 200, 0.01, "0123456789abcdef0123456789abcdef")

    for _ in range(rounds):
        results["baseline"].append(_time(baseline, n))
        results["metrics_only"].append(_time(metrics_only, n))
        for name, fmt in (("metrics_and_text_log", "text"), ("json_log", "json")):
            logs.configure(fmt)
            logging.getLogger().handlers[0].stream = sink  # type: ignore[attr-defined]
            results[name].append(_time(full, n))
    logging.getLogger().handlers.clear()
    sink.close()
    medians = {k: round(statistics.median(v), 2) for k, v in results.items()}
    return {
        "benchmark": "observability per request",
        "n_per_round": n,
        "rounds": rounds,
        "us_per_request_median": medians,
        "share_of_context_p50": {
            k: round(v / (CONTEXT_P50_MS * 1000), 4) for k, v in medians.items() if k != "baseline"
        },
        "json_vs_text": round(medians["json_log"] / medians["metrics_and_text_log"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.n, args.rounds), indent=None if args.json else 2))


if __name__ == "__main__":
    main()
