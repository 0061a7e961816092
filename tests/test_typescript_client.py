"""The TypeScript client (clients/typescript) on the live service: its own tests, run by
Node's test runner against the suite's API (`make test` installs the client's packages
from its package-lock.json first: `make ts-client`)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"
NODE_TESTS = 4  # the tests in clients/typescript/test/client.test.js


def test_typescript_client_on_the_live_service(service):
    assert (CLIENT / "node_modules").is_dir(), "the client's packages are missing: run `make ts-client`"
    run = subprocess.run(
        ["npm", "test"],
        cwd=CLIENT,
        env=os.environ | {"LOFT_URL": service.base, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = run.stdout[-8000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert re.search(rf"^# pass {NODE_TESTS}$", run.stdout, re.MULTILINE), report
    assert re.search(r"^# fail 0$", run.stdout, re.MULTILINE), report
