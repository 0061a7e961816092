"""A customer's export: everything both stores hold about them, one streamed JSON document
whose manifest is what an erasure right after it reports, table by table and label by
label; for admins and the customer's own key; audited; the same from the command line."""

from __future__ import annotations

import json
import uuid

from loft_memory.models import CustomerExport
from tests.conftest import ROOT
from tests.test_erasure import A_WORDS, _talk


def _export(api, user: str) -> tuple[dict, CustomerExport]:
    with api.stream("GET", f"/memory/user/{user}/export") as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/json")
        assert "chunked" in r.headers.get("transfer-encoding", "")  # streamed, not built whole
        body = r.read()
    return json.loads(body), CustomerExport.model_validate_json(body)


def test_the_manifest_is_what_the_following_erasure_deletes_table_by_table_and_label_by_label(
    service, api, stack, user
):
    _talk(api, stack, user, A_WORDS)
    service.wait_idle()
    doc, parsed = _export(api, user)

    # the manifest counts what the document holds
    manifest = doc["manifest"]
    assert manifest["postgres"] == {table: len(rows) for table, rows in doc["postgres"].items()}
    assert manifest["neo4j"]["nodes"] == len(doc["neo4j"]["nodes"])
    assert manifest["neo4j"]["relationships"] == len(doc["neo4j"]["relationships"])
    labels = manifest["neo4j"]["labels"]
    assert labels == {
        label: sum(label in n["labels"] for n in doc["neo4j"]["nodes"]) for label in ("Customer", "Entity")
    }
    assert labels["Customer"] == 1 and labels["Entity"] >= 3
    assert manifest["postgres"]["messages"] >= 14 and manifest["postgres"]["orders"] == 1
    assert manifest["postgres"]["jobs"] == 1  # the failed job _talk left

    receipt = api.delete(f"/memory/user/{user}").json()
    assert receipt["status"] == "complete"
    assert manifest["postgres"] == receipt["counts"]["postgres"]
    erased = receipt["counts"]["neo4j"]
    assert {k: erased[k] for k in manifest["neo4j"]} == manifest["neo4j"]

    # derived search data is named, not exported; everything else is there, with provenance
    assert "embedding" in doc["omitted"]["messages"] and "tsv" in doc["omitted"]["messages"]
    assert not any("embedding" in row for rows in doc["postgres"].values() for row in rows)
    texts = json.dumps(doc["postgres"]["messages"])
    assert all(word in texts for word in A_WORDS)
    imported = next(m for m in doc["postgres"]["messages"] if m["external_id"] == f"crm-{A_WORDS[0]}-1")
    assert imported["metadata"] == {"crm_note": f"{A_WORDS[0]} {A_WORDS[1]} VIP"}  # JSON, not a string
    assert imported["created_at"].startswith("2024-03-01T10:00:00")
    (line,) = doc["postgres"]["order_lines"]
    assert (line["sku"], line["qty"], line["unit_price"]) == ("LOFT-SOF-0001", 1, "1129.00")
    assert all(m["source_message_ids"] is not None for m in doc["postgres"]["long_term_memories"])
    node_ids = {n.id for n in parsed.neo4j.nodes}
    assert all(r.start in node_ids or r.end in node_ids for r in parsed.neo4j.relationships)


def test_the_export_names_every_fact_the_summary_shows(service, api, stack, user):
    _talk(api, stack, user, A_WORDS)
    service.wait_idle()
    summary = api.get(f"/memory/user/{user}/summary", params={"include_history": True}).json()
    doc, _ = _export(api, user)
    text = json.dumps(doc, ensure_ascii=False).lower()

    shown: list[str] = [summary["name"]]
    shown += [str(p["value"]) for p in summary["preferences"] if p["value"] is not None]
    shown += [e["name"] for e in summary["entities"] if e.get("name")]
    shown += [i["name"] for i in summary["interests"] if i.get("name")]
    shown += [p.get("sku") or p.get("name") for p in summary["purchases"]]
    shown += [m["content"] for m in summary["memories"]] + [str(m["id"]) for m in summary["memories"]]
    shown += [s["summary"] for s in summary["summaries"]]
    assert len(shown) >= 10 and summary["preferences"] and summary["memories"] and summary["summaries"]
    missing = [fact for fact in shown if fact is None or fact.lower() not in text]
    assert missing == [], missing


def test_export_refuses_unknown_and_erasing_customers_and_is_audited(service, api, stack, user):
    assert api.get(f"/memory/user/{user}/export").status_code == 404
    assert api.post("/v1/chat", json={"user_identifier": user, "message": "I like teak."}).status_code == 200
    service.wait_idle()
    with api.stream("GET", f"/memory/user/{user}/export", headers={"X-Request-ID": "rid-export-1"}) as r:
        assert r.status_code == 200
        r.read()
    (entry,) = api.get("/memory/audit", params={"customer": user, "action": "export"}).json()["entries"]
    assert (entry["key_name"], entry["request_id"]) == ("local", "rid-export-1")

    stack.sql(
        "INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after) "
        "VALUES ('erase_user', $1, $2, '{}'::jsonb, now() + interval '1 hour')",
        user,
        f"erase:test-{uuid.uuid4()}",
    )
    try:
        held = api.get(f"/memory/user/{user}/export")
        assert held.status_code == 409 and held.json()["error"] == "conflict"
    finally:
        stack.sql("DELETE FROM jobs WHERE user_identifier = $1 AND kind = 'erase_user'", user)


def test_the_command_line_writes_the_same_document(service, api, stack, user, tmp_path):
    _talk(api, stack, user, A_WORDS)
    service.wait_idle()
    out = tmp_path / "export.json"
    done = stack.loftmem("export", user, "--out", str(out))
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(out.read_text())
    from_api, _ = _export(api, user)
    for doc in (from_cli, from_api):
        doc.pop("exported_at")
    assert from_cli == from_api
    audited = api.get("/memory/audit", params={"customer": user, "action": "export"}).json()["entries"]
    assert [e["key_name"] for e in audited] == ["local", "cli"]
    assert stack.loftmem("export", "no such customer").returncode == 2


def test_the_documented_schema_is_the_models(api):
    documented = json.loads((ROOT / "docs" / "export.schema.json").read_text())
    documented.pop("$schema")
    assert documented == CustomerExport.model_json_schema()
    served = api.get("/openapi.json").json()
    assert "CustomerExport" in served["components"]["schemas"]
