"""Every customer in their own room: keys with roles on every route, secure defaults, and
no identifier trick that reads another customer's data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.conftest import ROOT, free_port, keyed_service

CHAT_KEY = "chat-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex
CUSTOMER_KEY = "cust-" + uuid.uuid4().hex
A_WORDS = ["Quorbisk", "Flennimore", "Trazzleby"]  # only customer A ever says these

# who may call each route: every route of the OpenAPI schema must be listed here
#   public: anyone (brief answer without a key); any: every valid key (no customer in the
#   path); customer: chat/admin for anyone, a customer key for its own customer; own: admin for
#   anyone, a customer key for its own customer, never a chat key; admin: admin only
POLICY = {
    ("GET", "/memory/status"): "public",
    ("GET", "/v1/whoami"): "any",
    ("POST", "/v1/chat"): "customer",
    ("POST", "/v1/sessions/{user_identifier}/messages"): "customer",
    ("GET", "/v1/sessions/{user_identifier}"): "customer",
    ("GET", "/v1/sessions/{user_identifier}/{session_id}/messages"): "customer",
    ("DELETE", "/v1/sessions/{user_identifier}/{session_id}"): "customer",
    ("DELETE", "/v1/sessions/{user_identifier}/{session_id}/messages/{message_id}"): "customer",
    ("GET", "/memory/context/{user_identifier}"): "customer",
    ("GET", "/memory/user/{user_identifier}/summary"): "customer",
    ("GET", "/memory/user/{user_identifier}/graph"): "customer",
    ("GET", "/memory/user/{user_identifier}/recommendations"): "customer",
    ("POST", "/v1/customers/{user_identifier}/orders"): "admin",
    ("GET", "/v1/customers/{user_identifier}/orders"): "customer",
    ("POST", "/memory/search/entities"): "customer",
    ("GET", "/memory/user/{user_identifier}/memories"): "customer",
    ("GET", "/memory/user/{user_identifier}/memories/{memory_id}"): "customer",
    ("GET", "/memory/user/{user_identifier}/memories/{memory_id}/history"): "customer",
    ("DELETE", "/memory/user/{user_identifier}/memories/{memory_id}"): "customer",
    ("DELETE", "/memory/user/{user_identifier}"): "admin",
    ("GET", "/memory/erasures/{receipt_id}"): "admin",
    ("GET", "/memory/erasures"): "admin",
    ("GET", "/memory/audit"): "admin",
    ("GET", "/memory/user/{user_identifier}/export"): "own",
    ("GET", "/memory/user/{user_identifier}/consent"): "customer",
    ("PUT", "/memory/user/{user_identifier}/consent"): "customer",
    ("POST", "/memory/test/populate-sample-data"): "admin",
    ("GET", "/metrics"): "admin",
}


@pytest.fixture(scope="module")
def keyed(stack, service, tmp_path_factory):
    """An API with chat, admin and customer keys (customer A), beside the suite's open one
    (the suite's worker does the ingestion for both: they share the stores)."""
    a = f"ka-{uuid.uuid4().hex[:8]}"
    svc = keyed_service(
        stack,
        tmp_path_factory.mktemp("keys"),
        chat=CHAT_KEY,
        admin=ADMIN_KEY,
        customer=a,
        secret=CUSTOMER_KEY,
        name="page-a",
    )
    try:
        yield svc, a
    finally:
        svc.stop()


def _client(base: str, key: str | None) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"} if key else {})


@pytest.fixture(scope="module")
def world(keyed, service, stack):
    """Customer A (bound to the customer key) with unusual words; customer B with a history,
    memories and an erasure receipt to address."""
    svc, a = keyed
    b = f"kb-{uuid.uuid4().hex[:8]}"
    chat = _client(svc.base, CHAT_KEY)
    for user, text in (
        (a, f"Hi, my name is {A_WORDS[0]}. My brother {A_WORDS[1]} loves walnut, we live in {A_WORDS[2]}."),
        (b, "Hi, my name is Bea and I love velvet sofas. I bought the Sloane Chaise Sectional."),
    ):
        r = chat.post("/v1/chat", json={"user_identifier": user, "message": text})
        assert r.status_code == 200, r.text
    service.wait_idle()
    memories = [str(r["id"]) for r in stack.sql("SELECT id FROM long_term_memories WHERE user_identifier = $1", b)]
    assert len(memories) >= 2, "B needs memories to address"
    throwaway = f"kc-{uuid.uuid4().hex[:8]}"
    receipt = _client(svc.base, ADMIN_KEY).delete(f"/memory/user/{throwaway}").json()["receipt_id"]
    (session,) = stack.sql("SELECT id FROM sessions WHERE user_identifier = $1", b)
    return {"a": a, "b": b, "memories": memories, "receipt": receipt, "session": str(session["id"])}


def _memory_of(stack, user: str) -> str:
    """A throwaway long-term memory of ``user`` (for the routes that delete one)."""
    (row,) = stack.sql(
        "INSERT INTO long_term_memories (user_identifier, kind, content, embedding, content_hash) "
        "VALUES ($1, 'fact', 'a note to delete', array_fill(0.1::real, ARRAY[384])::vector, $2) RETURNING id",
        user,
        uuid.uuid4().hex,
    )
    return str(row["id"])


def _turn_of(stack, user: str) -> tuple[str, str]:
    """A throwaway session of ``user`` with one turn (for the routes that delete one)."""
    session = uuid.uuid4()
    stack.sql(
        "INSERT INTO sessions (id, user_identifier, started_at, last_message_at) VALUES ($1, $2, now(), now())",
        session,
        user,
    )
    (row,) = stack.sql(
        "INSERT INTO messages (session_id, user_identifier, role, content) VALUES ($1, $2, 'user', 'a turn to delete') "
        "RETURNING id",
        session,
        user,
    )
    return str(session), str(row["id"])


def _request(method: str, path: str, about: str, world: dict, fresh: str, stack) -> tuple[str, dict]:
    """A valid request for the route, about customer ``about``."""
    target = fresh if (method, path) == ("DELETE", "/memory/user/{user_identifier}") else about
    memory = _memory_of(stack, about) if method == "DELETE" and "memory_id" in path else world["memories"][0]
    session, message = _turn_of(stack, about) if method == "DELETE" and "session_id" in path else (world["session"], "")
    url = (
        path.replace("{user_identifier}", target)
        .replace("{memory_id}", memory)
        .replace("{receipt_id}", world["receipt"])
        .replace("{session_id}", session)
        .replace("{message_id}", message)
    )
    kwargs: dict = {}
    if path == "/v1/chat":
        kwargs["json"] = {"user_identifier": about, "message": "What sofas do you have?"}
    elif method == "POST" and path.endswith("/messages"):
        kwargs["json"] = {
            "messages": [{"role": "user", "content": "importing a note", "created_at": "2024-01-01T10:00:00Z"}]
        }
    elif (method, path) == ("POST", "/v1/customers/{user_identifier}/orders"):
        kwargs["json"] = {
            "order_id": f"acc-{uuid.uuid4().hex}",
            "placed_at": "2024-01-01T10:00:00Z",
            "lines": [{"sku": "LOFT-SOF-0001", "qty": 1, "unit_price": 1129.0}],
        }
    elif path == "/memory/search/entities":
        kwargs["json"] = {"query": "sofa", "user_identifier": about}
    elif path == "/memory/test/populate-sample-data":
        kwargs["json"] = {"user_identifier": fresh}
    elif method == "PUT" and path.endswith("/consent"):
        kwargs["json"] = {"mode": "full"}  # raising (or keeping) the mode erases nothing
    elif path.startswith("/memory/context"):
        kwargs["params"] = {"query": "what does this customer like?"}
    return url, kwargs


def test_every_route_answers_each_role_as_specified_and_never_leaks(keyed, world, stack):
    svc, _ = keyed
    spec = httpx.get(svc.base + "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == set(POLICY), f"classify new routes in POLICY: {routes ^ set(POLICY)}"
    clients = {
        name: _client(svc.base, key)
        for name, key in (("none", None), ("customer-a", CUSTOMER_KEY), ("chat", CHAT_KEY), ("admin", ADMIN_KEY))
    }
    b = world["b"]
    for (method, path), policy in sorted(POLICY.items()):
        for who, client in clients.items():
            fresh = f"kf-{uuid.uuid4().hex[:8]}"
            url, kwargs = _request(method, path, b, world, fresh, stack)
            r = client.request(method, url, **kwargs)
            label = f"{who} {method} {path}"
            if policy == "public":
                assert r.status_code in (200, 503), label
                detailed = "stores" in r.json()
                assert detailed == (who == "admin"), f"{label}: details only for admin"
                continue
            if who == "none":
                assert r.status_code == 401, f"{label}: {r.status_code} {r.text}"
                assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
                continue
            allowed = {
                "any": True,
                "admin": who == "admin",
                "own": who == "admin",  # the request is about customer B: customer A's key is refused
                "customer": who in ("chat", "admin"),
            }[policy]
            if allowed:
                assert 200 <= r.status_code < 300, f"{label}: {r.status_code} {r.text}"
                assert not any(w.lower() in r.text.lower() for w in A_WORDS), f"{label} leaked A's data: {r.text[:300]}"
            else:
                assert r.status_code == 403, f"{label}: {r.status_code} {r.text}"
                assert r.json()["error"] == "forbidden"


def test_a_customer_key_reads_its_own_customer(keyed, world):
    svc, a = keyed
    mine = _client(svc.base, CUSTOMER_KEY)
    assert mine.get("/v1/whoami").json() == {"key": "page-a", "role": "customer", "customer": a, "open": False}
    ctx = mine.get(f"/memory/context/{a}", params={"query": "brother", "budget": 1000})
    assert ctx.status_code == 200 and A_WORDS[1] in ctx.text
    assert mine.post("/v1/chat", json={"user_identifier": a, "message": "Hello again"}).status_code == 200
    assert mine.delete(f"/memory/user/{a}").status_code == 403  # erasure is the admin's
    export = mine.get(f"/memory/user/{a}/export")
    assert export.status_code == 200 and A_WORDS[1] in export.text  # the customer's own data, theirs to take
    assert _client(svc.base, CHAT_KEY).get(f"/memory/user/{a}/export").status_code == 403


@pytest.mark.parametrize(
    "crafted",
    [
        "{a}%2F..",
        "{a}%2F..%2F{b}",
        "{a}%00",
        "{a}%20",
        "%20{a}",
        "{A}",
        "{a}%0A",
        "..%2F{b}",
        "{a}/../{b}",
        "{b}",
    ],
)
def test_crafted_identifiers_never_reach_another_customer(keyed, world, crafted):
    svc, a = keyed
    mine = _client(svc.base, CUSTOMER_KEY)
    ident = crafted.format(a=a, b=world["b"], A=a.upper())
    for url in (
        f"/memory/context/{ident}?query=sofa",
        f"/memory/user/{ident}/summary",
        f"/v1/sessions/{ident}",
        f"/memory/user/{ident}/memories",
    ):
        r = mine.get(url)
        assert r.status_code in (403, 404, 422), f"{url}: {r.status_code} {r.text[:200]}"
        assert "Bea" not in r.text and "velvet" not in r.text
    body_ident = ident.replace("%2F", "/").replace("%00", "\x00").replace("%20", " ").replace("%0A", "\n")
    r = mine.post("/v1/chat", json={"user_identifier": body_ident, "message": "hello"})
    assert r.status_code in (403, 422), r.text


def test_keys_are_checked_as_bytes_in_constant_time_and_only_names_are_kept(keyed, stack):
    svc, _ = keyed
    for headers in (
        {"Authorization": "Bearer caf\u00e9-not-a-key"},
        {"X-API-Key": "\u00fc" * 20},
        {"Authorization": "Basic " + ADMIN_KEY},
        {"Authorization": "Bearer"},
        {"X-API-Key": CHAT_KEY + "x"},
    ):
        r = httpx.get(svc.base + "/v1/whoami", headers={k: v.encode("latin-1") for k, v in headers.items()})
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == "unauthorized" and r.json()["request_id"] == r.headers["x-request-id"]
    assert httpx.get(svc.base + "/v1/whoami", headers={"X-API-Key": CHAT_KEY}).json()["key"] == "backend"
    # the logs name keys, never secrets
    logs = (svc.logs / "api.log").read_text(errors="replace")
    assert CHAT_KEY not in logs and ADMIN_KEY not in logs and CUSTOMER_KEY not in logs


def test_sample_data_is_for_admins_in_development_from_this_origin(keyed, world):
    svc, _ = keyed
    admin = _client(svc.base, ADMIN_KEY)
    user = f"ks-{uuid.uuid4().hex[:8]}"
    cross = admin.post(
        "/memory/test/populate-sample-data", json={"user_identifier": user}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "own pages" in cross.json()["detail"]
    form = admin.post("/memory/test/populate-sample-data", data={"user_identifier": user})
    assert form.status_code == 422  # a form post (what another site could send) is not JSON
    # a page whose name was pointed at this machine (DNS rebinding) sends its own name as both
    # Host and Origin: the origin is compared with the address the request reached
    rebound = f"attacker.example:{svc.port}"
    r = admin.post(
        "/memory/test/populate-sample-data",
        json={"user_identifier": user},
        headers={"Host": rebound, "Origin": f"http://{rebound}"},
    )
    assert r.status_code == 403 and "own pages" in r.json()["detail"], r.text
    same = admin.post("/memory/test/populate-sample-data", json={"user_identifier": user}, headers={"Origin": svc.base})
    assert same.status_code == 200, same.text
    local = admin.post(
        "/memory/test/populate-sample-data",
        json={"user_identifier": user},
        headers={"Origin": f"http://localhost:{svc.port}"},
    )
    assert local.status_code == 200, local.text


def test_a_keyless_service_answers_only_requests_addressed_to_this_machine(service, user):
    """Without keys every caller is the local admin: a web page that points its own name at
    127.0.0.1 (DNS rebinding) must reach no route, and says why it does not."""
    rebound = {"Host": f"attacker.example:{service.port}"}
    with httpx.Client(base_url=service.base, timeout=30) as http:
        assert (
            http.post(
                f"/v1/sessions/{user}/messages", json={"messages": [{"role": "user", "content": "mine"}]}
            ).status_code
            == 201
        )
        for method, path, kwargs in (
            ("GET", f"/v1/sessions/{user}", {}),
            ("GET", f"/memory/context/{user}", {"params": {"query": "mine"}}),
            ("DELETE", f"/memory/user/{user}", {}),
            ("POST", "/memory/test/populate-sample-data", {"json": {"user_identifier": user}}),
            ("GET", "/metrics", {}),
            ("GET", "/memory/status", {}),
        ):
            for headers in (rebound, rebound | {"Origin": f"http://attacker.example:{service.port}"}):
                r = http.request(method, path, headers=headers, **kwargs)
                assert r.status_code == 403, (method, path, r.status_code, r.text)
                assert "without API keys" in r.json()["detail"] and "attacker.example" in r.json()["detail"]
                assert "mine" not in r.text
        # a loopback name smuggled into a Host no browser would send
        for host in (f"attacker.example@127.0.0.1:{service.port}", f"127.0.0.1:{service.port}/x", "127.0.0.1:port"):
            assert http.get(f"/v1/sessions/{user}", headers={"Host": host}).status_code in (400, 403), host
        # another site's page sending to 127.0.0.1 directly
        r = http.get(f"/v1/sessions/{user}", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.json()["detail"]
        # this machine's own names, and its own pages, still work
        for headers in ({}, {"Host": f"localhost:{service.port}"}, {"Origin": service.base}):
            r = http.get(f"/v1/sessions/{user}", headers=headers)
            assert r.status_code == 200 and r.json()["sessions"], (headers, r.text)
    assert httpx.get(f"{service.base}/v1/sessions/{user}").status_code == 200  # nothing was erased
    assert service.http.get(f"/v1/sessions/{user}").json()["sessions"][0]["messages"][0]["content"] == "mine"


def _serve(stack, env: dict[str, str], *args: str) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOFT_API_KEYS")}
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", *args],
        env=clean | stack.env | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.3)


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("keys", [None, ",,", " , "])
def test_without_keys_the_api_listens_on_localhost_only(stack, keys):
    port = free_port()
    env = {"LOFT_PORT": str(port)} | ({"LOFT_API_KEYS": keys} if keys is not None else {})
    proc = _serve(stack, env)
    try:
        _wait_up(f"http://127.0.0.1:{port}/memory/status", proc)
        me = httpx.get(f"http://127.0.0.1:{port}/v1/whoami").json()
        assert me["open"] is True and me["role"] == "admin"
        outside = _outside_address()
        if outside:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{outside}:{port}/memory/status", timeout=2)
    finally:
        proc.terminate()
        proc.wait(20)


def test_without_keys_it_refuses_to_listen_on_other_addresses(stack):
    proc = _serve(stack, {"LOFT_PORT": str(free_port()), "LOFT_API_KEYS": ",,"}, "--host", "0.0.0.0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "refusing to listen on 0.0.0.0 without API keys" in out and "Traceback" not in out
    # a lab can say so explicitly
    port = free_port()
    lab = _serve(stack, {"LOFT_PORT": str(port), "LOFT_ALLOW_OPEN": "1"}, "--host", "0.0.0.0")
    try:
        _wait_up(f"http://127.0.0.1:{port}/memory/status", lab)
    finally:
        lab.terminate()
        lab.wait(20)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ("backend:chat:short", "at least 16"),
        ("backend:root:" + "x" * 20, "role must be one of"),
        ("nocolons", "name:role:secret"),
        ("page:customer:" + "x" * 20, "LOFT_API_KEYS_FILE"),
        (f"a:chat:{'x' * 20},a:admin:{'y' * 20}", "unique"),
    ],
)
def test_a_malformed_key_configuration_stops_the_service_without_echoing_secrets(stack, keys, needle):
    proc = _serve(stack, {"LOFT_PORT": str(free_port()), "LOFT_API_KEYS": keys})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and needle in out, out
    assert "x" * 20 not in out and "y" * 20 not in out and "Traceback" not in out


def test_key_file_may_hold_only_hashes(stack, tmp_path):
    import hashlib

    secret = "file-" + uuid.uuid4().hex
    (tmp_path / "keys.json").write_text(
        json.dumps(
            {"keys": [{"name": "hashed", "role": "chat", "secret_sha256": hashlib.sha256(secret.encode()).hexdigest()}]}
        )
    )
    port = free_port()
    proc = _serve(stack, {"LOFT_PORT": str(port), "LOFT_API_KEYS_FILE": str(tmp_path / "keys.json")})
    try:
        _wait_up(f"http://127.0.0.1:{port}/memory/status", proc)
        ok = httpx.get(f"http://127.0.0.1:{port}/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
        assert ok.json()["key"] == "hashed"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/whoami").status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)


def test_docker_compose_requires_keys_and_keeps_neo4j_local():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "LOFT_API_KEYS: ${LOFT_API_KEYS:?" in text and "LOFT_ERASURE_KEY: ${LOFT_ERASURE_KEY:?" in text
    import yaml

    neo4j = yaml.safe_load(text)["services"]["neo4j"]
    assert all(p.startswith("127.0.0.1:") for p in neo4j["ports"])


def test_the_circuit_breaker_opens_on_outages_not_on_one_slow_read():
    from service.breaker import CircuitBreaker

    breaker = CircuitBreaker("neo4j", threshold=2, reset_s=0.2)
    assert breaker.allow()
    breaker.failure()
    assert breaker.allow() and not breaker.open  # one failure is not an outage
    breaker.failure()
    assert breaker.open and not breaker.allow()
    time.sleep(0.25)
    assert breaker.allow()  # half-open: one probe goes through
    assert not breaker.allow()  # and only one
    breaker.success()
    assert not breaker.open and breaker.allow()
