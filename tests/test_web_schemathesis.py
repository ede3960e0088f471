"""The OpenAPI document against the live server (schemathesis): for requests generated from the
document, no server error, no status it does not list, no response outside its schema or media
type. A bounded number of examples per operation keeps this under a minute; run
``st run http://127.0.0.1:PORT/openapi.json --max-examples 300`` against a server for more."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server(synth_server):
    return synth_server


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def operations(api_schema) -> list:
    """Every documented operation (schemathesis' pytest plugin does not load under pytest 9)."""
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.slow
def test_the_server_keeps_its_documented_promises(api_schema):
    ops = operations(api_schema)
    assert {op.label for op in ops} >= {"GET /api/search", "POST /api/image", "GET /media/{video_id}", "GET /thumb/{segment_id}"}
    for op in ops:

        @settings(
            max_examples=25, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck), database=None,
        )  # fmt: skip
        @given(case=op.as_strategy())
        def check(case):
            case.call_and_validate(checks=CHECKS, timeout=60)

        check()
