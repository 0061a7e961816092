"""Property-based fuzzing of the OpenAPI schema the test stack serves: every operation,
generated inputs (valid and invalid), a fixed seed and a bounded number of examples. No
answer may be a 5xx, and every answer must match the schema the API publishes for its
status.

The schema is built from the app at collection time (pytest needs the operations before
the stack is up) and checked to be exactly the one the running API serves."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from service.api.app import create_app
from service.settings import Settings

EXAMPLES = 30  # per operation: the suite stays fast; raise it locally to fuzz harder
SPEC = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(SPEC)
# valid and invalid inputs, NUL characters and any Unicode (lone surrogates included)
schema.config.generation.update(modes=list(GenerationMode), allow_x00=True, codec="utf-8")


def test_the_fuzzed_schema_is_the_one_the_api_serves(api):
    assert api.get("/openapi.json").json() == SPEC


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_no_operation_answers_5xx_or_breaks_its_schema(case, service):
    case.call_and_validate(base_url=service.base, checks=[not_a_server_error, response_schema_conformance], timeout=60)


def test_zz_the_worker_digests_everything_the_fuzzer_sent(service):
    service.wait_idle(timeout=120)
