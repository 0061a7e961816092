"""The Neo4j server's jars are the ones pinned in devstack/neo4j-jars.lock: a changed,
missing or extra jar stops the start with its name. Tampering happens only on temporary
copies of the lock or the classpath, never on the shared cache under $LOFT_CACHE_DIR."""

from __future__ import annotations

import shutil

import pytest

from devstack import jars
from devstack.neo4j import Neo4jStartError, ensure_server_jars, neo4j_version

KERNEL = f"neo4j-kernel-{neo4j_version()}.jar"


@pytest.fixture
def shared_lib(stack):
    """The classpath the suite's Neo4j runs from (resolved and checked when it started)."""
    return stack.settings.cache_dir / f"neo4j-{neo4j_version()}" / "lib"


def _tampered_lock(tmp_path, jar: str = KERNEL):
    lines = jars.LOCK.read_text().splitlines(keepends=True)
    changed = [("0" * 64 + line[64:]) if line.endswith(f"  {jar}\n") else line for line in lines]
    assert changed != lines, f"{jar} is not in the lock"
    lock = tmp_path / "neo4j-jars.lock"
    lock.write_text("".join(changed))
    return lock


def test_the_running_server_uses_exactly_the_pinned_jars(shared_lib):
    jars.verify(shared_lib)
    assert (shared_lib.parent / ".complete").read_text() == jars.lock_id()
    assert len(jars.read_lock()) == len(list(shared_lib.glob("*.jar")))
    assert KERNEL in jars.read_lock() and f"neo4j-browser-{_browser_version()}.jar" in jars.read_lock()


def test_a_changed_checksum_is_named(shared_lib, tmp_path):
    with pytest.raises(jars.JarChecksumError, match=f"checksum mismatch: {KERNEL}"):
        jars.verify(shared_lib, _tampered_lock(tmp_path))


def test_an_extra_or_missing_jar_is_named(shared_lib, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for jar in shared_lib.glob("*.jar"):  # links: the shared files are only read
        if jar.name != KERNEL:
            (lib / jar.name).symlink_to(jar)
    (lib / "helpful-plugin-1.0.jar").write_bytes(b"PK\x03\x04 not from the pom")
    with pytest.raises(jars.JarChecksumError) as failed:
        jars.verify(lib)
    assert f"missing: {KERNEL}" in str(failed.value)
    assert "not in the lock: helpful-plugin-1.0.jar" in str(failed.value)


@pytest.mark.slow
def test_resolution_fails_loudly_on_a_mismatch(tmp_path):
    """A fresh resolution (Maven, into an empty cache dir) whose kernel jar does not match
    the lock: the start fails naming the jar, and the cache is not marked complete."""
    cache = tmp_path / "cache"
    with pytest.raises(Neo4jStartError, match=f"checksum mismatch: {KERNEL}"):
        ensure_server_jars(cache, lock=_tampered_lock(tmp_path))
    lib = cache / f"neo4j-{neo4j_version()}" / "lib"
    assert (lib / KERNEL).exists(), "Maven resolved the jars"
    assert not (lib.parent / ".complete").exists()
    # the same jars against the real lock: accepted, and marked for that lock
    assert ensure_server_jars(cache) == lib
    assert (lib.parent / ".complete").read_text() == jars.lock_id()
    shutil.rmtree(cache)


def test_the_lock_regenerates_from_a_classpath(shared_lib, tmp_path):
    lock = tmp_path / "regenerated.lock"
    assert jars.write_lock(shared_lib, lock) == len(jars.read_lock())
    assert jars.read_lock(lock) == jars.read_lock()


def _browser_version() -> str:
    import re

    found = re.search(r"<neo4j.browser.version>([^<]+)<", jars.POM.read_text())
    assert found
    return found.group(1)
