#!/usr/bin/env python3
"""The TypeScript client's types (``clients/typescript/src/schema.ts``), generated from the
service's OpenAPI schema with the client's pinned ``openapi-typescript``.

    python scripts/ts_schema.py           # write them (`make ts-types`)
    python scripts/ts_schema.py --check   # exit code 1 and a diff when they are out of date

The schema is the app's own (``create_app(...).openapi()``), so a change of a route or a
model that the committed types do not have fails ``make lint`` until they are written again.
Needs the client's packages (``make ts-client`` installs them from its package-lock.json).
"""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "typescript"
TYPES = CLIENT / "src" / "schema.ts"
GENERATOR = CLIENT / "node_modules" / ".bin" / "openapi-typescript"


def schema() -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from service.api.app import create_app
    from service.settings import Settings

    return create_app(Settings()).openapi()


def generate() -> str:
    if not GENERATOR.exists():
        sys.exit(f"{GENERATOR.relative_to(ROOT)} is missing: run `make ts-client` first")
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "openapi.json", Path(tmp) / "schema.ts"
        spec.write_text(json.dumps(schema(), indent=1, sort_keys=True))
        subprocess.run([str(GENERATOR), str(spec), "--output", str(out)], check=True, capture_output=True, cwd=CLIENT)
        return out.read_text()


def main() -> int:
    fresh = generate()
    if "--check" not in sys.argv[1:]:
        TYPES.write_text(fresh)
        return 0
    current = TYPES.read_text() if TYPES.exists() else ""
    if current == fresh:
        return 0
    rel = str(TYPES.relative_to(ROOT))
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True), rel, "generated"))
    print(f"\n{rel} does not match the service's OpenAPI schema: run `make ts-types`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
