"""Pinned checksums of the local Neo4j server's jars (``neo4j-jars.lock`` beside this file).

Maven resolves the server and Neo4j Browser from Maven Central (``neo4j-pom.xml``). Its
default checksum policy only warns, and whatever already sits in ``~/.m2`` is trusted, so
the jars copied into the cache are checked here against the sha256 of every file, committed
in the lock: a changed, missing or extra jar stops the start and names the file. The lock
is in ``sha256sum`` format (``cd <lib> && sha256sum -c <lock>`` reads it too).

After changing a version in ``neo4j-pom.xml``, regenerate the lock and review its diff::

    python -m devstack.jars --update

That resolves the pom afresh (Maven's strict checksums on) into a temporary directory and
rewrites the lock from what it got.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

POM = Path(__file__).with_name("neo4j-pom.xml")
LOCK = Path(__file__).with_name("neo4j-jars.lock")
_HEADER = """\
# sha256 of every jar `mvn -f neo4j-pom.xml dependency:copy-dependencies` resolves (runtime scope).
# Checked by devstack/jars.py before the server starts. Regenerate after changing
# neo4j-pom.xml with `python -m devstack.jars --update`, and review the diff.
"""


class JarChecksumError(RuntimeError):
    pass


def digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_lock(lock: Path = LOCK) -> dict[str, str]:
    """The lock's ``{jar file name: sha256}``."""
    pinned: dict[str, str] = {}
    for number, line in enumerate(lock.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        checksum, _, name = line.partition("  ")
        if len(checksum) != 64 or not name.endswith(".jar") or "/" in name:
            raise JarChecksumError(f"{lock}:{number}: not a '<sha256>  <file>.jar' line: {line!r}")
        pinned[name] = checksum
    return pinned


def lock_id(lock: Path = LOCK) -> str:
    """Names the lock's pins (its comments aside): a cache verified against other pins is checked again."""
    pins = "".join(f"{checksum}  {name}\n" for name, checksum in sorted(read_lock(lock).items()))
    return hashlib.sha256(pins.encode()).hexdigest()


def verify(lib: Path, lock: Path = LOCK) -> None:
    """Raise :class:`JarChecksumError` unless ``lib`` holds exactly the lock's jars, byte for byte."""
    pinned = read_lock(lock)
    found = {p.name: p for p in lib.glob("*.jar")}
    problems = [f"missing: {name}" for name in sorted(pinned.keys() - found.keys())]
    problems += [f"not in the lock: {name}" for name in sorted(found.keys() - pinned.keys())]
    for name in sorted(pinned.keys() & found.keys()):
        actual = digest(found[name])
        if actual != pinned[name]:
            problems.append(f"checksum mismatch: {name} is {actual}, the lock pins {pinned[name]}")
    if problems:
        raise JarChecksumError(
            f"the Neo4j jars in {lib} do not match {lock} ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems[:20])
            + f"\nRemove {lib.parent} to resolve them again; if neo4j-pom.xml changed on purpose, "
            "regenerate the lock with `python -m devstack.jars --update`"
        )


def resolve(lib: Path, *, pom: Path = POM) -> None:
    """``mvn dependency:copy-dependencies`` of ``pom`` into ``lib``, failing on any bad
    repository checksum (``--strict-checksums``)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarChecksumError(
            "Maven (mvn) is needed to fetch the Neo4j server from Maven Central; "
            "install it (apt-get install maven) or set NEO4J_URI"
        )
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "--strict-checksums",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise JarChecksumError(
            f"mvn could not resolve the Neo4j server:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def write_lock(lib: Path, lock: Path = LOCK) -> int:
    jars = sorted(lib.glob("*.jar"))
    lock.write_text(_HEADER + "".join(f"{digest(p)}  {p.name}\n" for p in jars))
    return len(jars)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or regenerate the Neo4j jars' lock.")
    parser.add_argument("--update", action="store_true", help="resolve neo4j-pom.xml afresh and rewrite the lock")
    parser.add_argument("--check", type=Path, metavar="LIB", help="check a resolved lib directory against the lock")
    args = parser.parse_args(argv)
    try:
        if args.update:
            with tempfile.TemporaryDirectory(prefix="loft-neo4j-jars-") as tmp:
                lib = Path(tmp) / "lib"
                lib.mkdir()
                resolve(lib)
                print(f"{write_lock(lib)} jars pinned in {LOCK}")
        elif args.check is not None:
            verify(args.check)
            print(f"{args.check}: every jar matches {LOCK}")
        else:
            parser.error("say --update or --check LIB")
    except JarChecksumError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
