"""How LOFT is shipped and run: an image that runs as an unprivileged user and carries no
benchmarks or dev tooling, base images and uv pinned, benchmarks that never touch stores
not said to be throwaway, and a worker metrics endpoint that stays on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_runs_as_an_unprivileged_user_without_benchmarks_or_tooling():
    lines = _dockerfile()
    base = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert base and all(DIGEST.search(b) for b in base), base
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    copied = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    sources = {s for srcs in copied for s in srcs}
    assert not sources & {".", "bench", "tests", "scripts", "loft_memory", ".venv", ".loft"}, sources
    assert sources & {"service", "graph", "vectors", "migrations"} == {"service", "graph", "vectors", "migrations"}
    # the build context itself leaves out data, environments, benchmarks and tests
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored[0] == "*", "everything is left out but what is named"
    assert not [line for line in ignored if re.match(r"!(bench|tests|scripts/?$|\.loft|\.venv|\.git)", line)]


def test_uv_is_installed_by_version_and_hash_only():
    requirements = (ROOT / "scripts" / "uv-requirements.txt").read_text()
    pinned = re.search(r"^uv==(\d+\.\d+\.\d+) ", requirements, re.M)
    assert pinned, "uv pinned to one version"
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", requirements)
    assert len(hashes) >= 2 and len(set(hashes)) == len(hashes)  # x86_64 and aarch64 wheels
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--require-hashes" in bootstrap and "uv-requirements.txt" in bootstrap
    assert not re.search(r'pip install[^\n]*"uv==', bootstrap), "no unhashed uv install left"
    install = [line for line in _dockerfile() if "pip install" in line]
    assert install and all("--require-hashes" in line and "uv-requirements.txt" in line for line in install)
    # the bootstrap reads the version from the same file
    version = subprocess.run(
        ["bash", "-c", f"sed -n 's/^uv==\\([0-9.]*\\).*/\\1/p' {ROOT / 'scripts' / 'uv-requirements.txt'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == pinned.group(1)


def test_compose_pins_neo4j_by_digest_and_drops_privileges():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert DIGEST.search(services["neo4j"]["image"]) and services["neo4j"]["image"].startswith("neo4j:5.26-community@")
    for name in ("migrate", "api", "worker"):
        assert services[name]["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in services[name]["security_opt"]
        assert not services[name].get("privileged") and "user" not in services[name]  # the image's user
    assert "127.0.0.1" in services["neo4j"]["environment"]["NEO4J_browser_remote__content__hostname__whitelist"]


def test_a_benchmark_refuses_stores_not_said_to_be_throwaway(stack):
    """bench.latency drops the memories' HNSW index during its load: pointed at the suite's
    stores (as it would be at production ones) it refuses, and the index is still there."""
    env = {k: v for k, v in os.environ.items() if k != "LOFT_BENCH_THROWAWAY_STORES"}
    env |= {"DATABASE_URL": stack.env["DATABASE_URL"], "NEO4J_URI": stack.env["NEO4J_URI"]}
    env["NEO4J_PASSWORD"] = stack.env["NEO4J_PASSWORD"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.latency", "--json", "--customers", "50", "--no-profile"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "refusing to benchmark against the stores in DATABASE_URL and NEO4J_URI" in run.stderr
    assert "--throwaway-stores" in run.stderr
    assert run.stdout == ""
    names = {r["indexname"] for r in stack.sql("SELECT indexname FROM pg_indexes")}
    assert "ltm_embedding_hnsw_idx" in names


def test_benchmarks_accept_stores_said_to_be_throwaway(monkeypatch):
    from bench.common import THROWAWAY_ENV, ExternalStoresRefused, refuse_external_stores

    monkeypatch.delenv(THROWAWAY_ENV, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://bench@127.0.0.1:1/scratch")
    refuse_external_stores(throwaway=True)
    monkeypatch.setenv(THROWAWAY_ENV, "1")
    refuse_external_stores()
    monkeypatch.delenv(THROWAWAY_ENV)
    with pytest.raises(ExternalStoresRefused, match="DATABASE_URL"):
        refuse_external_stores()


def _listening(pid: int, port: int) -> set[str]:
    """The local addresses process ``pid`` listens on at ``port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A" and fields[9] in inodes:
                found.add(address)
    return found


def test_worker_metrics_stay_on_loopback_when_the_api_listens_everywhere(stack):
    port = free_port()
    env = os.environ | stack.env | {"LOFT_HOST": "0.0.0.0"}
    env.pop("LOFT_WORKER_METRICS_HOST", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", "--metrics-port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert worker.poll() is None and time.monotonic() < deadline, "the worker's metrics never answered"
            time.sleep(0.5)
        assert _listening(worker.pid, port) == {"0100007F"}  # 127.0.0.1 only, not 0.0.0.0
    finally:
        worker.terminate()
        worker.wait(30)
