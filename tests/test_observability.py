"""Operators can scrape and graph the service and follow a request through its log:
Prometheus metrics of the API and the worker, one log line per request (text or JSON)."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Service, free_port, paused


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def logged(svc: Service, ready) -> list[dict]:
    """The API log's JSON lines, once ``ready(text)`` (a request's line is written as its
    response finishes, so it may land a moment after the client has the response)."""
    deadline = time.monotonic() + 30
    while not ready(text := svc.log_tail("api", 2_000_000)):
        assert time.monotonic() < deadline, f"the request's log line never appeared:\n{text[-2000:]}"
        time.sleep(0.1)
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def families(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def observed(stack):
    """An API and a worker that serves its own metrics, logging JSON lines."""
    port = free_port()
    svc = Service(stack, extra_env={"LOFT_WORKER_METRICS_PORT": str(port), "LOFT_LOG_FORMAT": "json"})
    try:
        yield svc, f"http://127.0.0.1:{port}/metrics"
    finally:
        svc.stop()


def test_api_metrics_parse_and_move_after_a_chat_turn(observed, user):
    svc, _ = observed
    before = svc.http.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    turn = svc.http.post("/v1/chat", json={"user_identifier": user, "message": "I love walnut coffee tables"})
    assert turn.status_code == 200, turn.text
    assert svc.http.get(f"/memory/context/{user}", params={"query": "walnut"}).status_code == 200
    after = svc.http.get("/metrics").text

    chat = {"method": "POST", "route": "/v1/chat", "status": "200"}
    assert (
        value(after, "loft_http_requests_total", **chat) >= value(before.text, "loft_http_requests_total", **chat) + 1
    )
    assert value(after, "loft_http_request_duration_seconds_count", **chat) >= 1
    context_route = {"route": "/memory/context/{user_identifier}", "status": "200"}
    assert value(after, "loft_http_requests_total", **context_route) >= 1
    assert user not in after, "a customer's identifier must never become a label"
    for stage in ("embed", "postgres", "graph", "fuse", "pack"):
        moved = value(after, "loft_context_stage_seconds_count", stage=stage) - value(
            before.text, "loft_context_stage_seconds_count", stage=stage
        )
        assert moved >= 2, f"stage {stage} moved by {moved}"  # the turn's context and the GET
    assert value(after, "loft_context_tier_answers_total", tier="postgres", answered="true") >= 2
    assert value(after, "loft_embedder_encode_calls_total") > value(before.text, "loft_embedder_encode_calls_total")
    assert value(after, "loft_embedder_query_cache_misses_total") >= 1
    assert value(after, "loft_store_up", store="postgres") == 1 and value(after, "loft_store_up", store="neo4j") == 1
    assert {"loft_queue_jobs", "loft_queue_oldest_ready_age_seconds", "process_cpu_seconds"} <= families(after)
    assert value(after, "loft_event_loop_lag_seconds") >= 0 and "loft_event_loop_lag_seconds" in families(after)


def test_worker_metrics_move_after_a_batch(observed, service, user):
    svc, worker_url = observed
    done = {"kind": "ingest_message", "outcome": "done"}
    # the suite's own worker shares the queue: it is paused, so this one files the turn (ten
    # tries at winning the race against it once all lost, under a full run's load)
    with paused(service):
        before = httpx.get(worker_url, timeout=10).text
        turn = svc.http.post("/v1/chat", json={"user_identifier": user, "message": "I bought 2 oak chairs"})
        assert turn.status_code == 200, turn.text
        svc.wait_idle()
        after = httpx.get(worker_url, timeout=10).text
    assert value(after, "loft_worker_jobs_total", **done) > value(before, "loft_worker_jobs_total", **done)
    assert value(after, "loft_worker_batch_size_count", lane="live") > value(
        before, "loft_worker_batch_size_count", lane="live"
    )
    assert value(after, "loft_worker_batch_duration_seconds_count", lane="live") >= 1
    assert value(after, "loft_embedder_texts_total") >= 1
    assert "loft_event_loop_lag_seconds" in families(after)  # the worker's loop is watched too


def test_a_request_id_is_echoed_and_in_that_requests_json_log_line(observed, user):
    svc, _ = observed
    rid = f"trace-{uuid.uuid4().hex}"
    secret_words = f"Wobblefritz {uuid.uuid4().hex[:6]}"
    r = svc.http.post(
        "/v1/chat",
        json={"user_identifier": user, "message": f"My cat is called {secret_words}"},
        headers={"X-Request-ID": rid},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    generated = svc.http.get(f"/memory/user/{user}/summary")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])

    lines = logged(svc, lambda text: rid in text and generated.headers["x-request-id"] in text)
    mine = [e for e in lines if e.get("request_id") == rid]
    assert len(mine) == 1, mine
    (entry,) = mine
    assert entry["route"] == "/v1/chat" and entry["status"] == 200 and entry["method"] == "POST"
    assert entry["duration_ms"] > 0 and entry["level"] == "info" and entry["logger"] == "loft.access"
    assert re.fullmatch(r"[0-9a-f]{16}", entry["customer"]) and user not in json.dumps(entry)
    summary_line = [e for e in lines if e.get("request_id") == generated.headers["x-request-id"]]
    assert summary_line and summary_line[0]["customer"] == entry["customer"]  # one customer, one tag
    log = svc.log_tail("api", 2_000_000)
    assert secret_words not in log and user not in log, "message bodies and identifiers stay out of the log"


def test_text_log_lines_by_default(service, user):
    rid = f"text-{uuid.uuid4().hex}"
    r = service.http.get(f"/memory/context/{user}", params={"query": "sofas"}, headers={"X-Request-ID": rid})
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    logged(service, lambda text: f"rid={rid}" in text)
    (line,) = [ln for ln in service.log_tail("api", 2_000_000).splitlines() if f"rid={rid}" in ln]
    assert "GET /memory/context/{user_identifier} 200" in line and " ms " in line
    assert re.search(r"customer=[0-9a-f]{16}", line) and user not in line and "sofas" not in line


def test_logs_and_answers_never_carry_an_identifier_or_driver_text_during_an_outage(stack):
    """Neo4j unreachable for a whole API: every graph read fails, and the log says which
    route failed and for which customer tag, never the identifier in the path; the summary
    says the graph tier is missing as the context does, without the driver's message."""
    ident = f"n16-{uuid.uuid4().hex[:8]}@example.com"
    down = free_port()
    svc = Service(stack, worker=False, extra_env={"NEO4J_URI": f"bolt://127.0.0.1:{down}"})
    try:
        api = svc.http
        imported = api.post(f"/v1/sessions/{ident}/messages", json={"messages": [{"role": "user", "content": "hi"}]})
        assert imported.status_code == 201, imported.text
        graph = api.get(f"/memory/user/{ident}/graph")
        assert graph.status_code == 503 and graph.json()["error"] == "store_unavailable", graph.text
        summary = api.get(f"/memory/user/{ident}/summary")
        assert summary.status_code == 200, summary.text
        said = summary.json()["errors"]["neo4j"]
        assert said.startswith("Neo4j") and str(down) not in said and "127.0.0.1" not in said, said
        context = api.get(f"/memory/context/{ident}", params={"query": "what did I say?"}).json()
        assert context["tiers"]["neo4j"] is False and str(down) not in json.dumps(context["errors"])
        logs = svc.log_tail("api", 2_000_000)
        assert "GET /memory/user/{user_identifier}/graph" in logs and "neo4j unavailable" in logs, logs[-3000:]
        assert ident not in logs and ident.split("@")[0] not in logs, "an identifier reached the log"
    finally:
        svc.stop()


def test_logged_validation_errors_leave_out_the_values_they_quote():
    import logging

    from pydantic import BaseModel, ValidationError

    from service.logs import JsonFormatter, TextFormatter

    class Extraction(BaseModel):
        importance: float

    words = "my sister Wenonah lives in Leeds"
    try:
        Extraction.model_validate({"importance": words})
    except ValidationError as exc:
        error = ValueError(f"the model's extraction did not validate twice: {exc}")
    record = logging.LogRecord(
        "loft.pipeline", logging.WARNING, __file__, 1, "LLM extraction failed (%s)", (error,), None
    )
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "float_parsing" in line and words not in line and "input_value=(not logged)" in line, line
