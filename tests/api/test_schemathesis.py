"""Property-based tests of ``/api/v1`` from its own OpenAPI schema (schemathesis): every GET
and the corrections POST, with an analyst's token, never answer 5xx and answer what the schema
says — on SQLite and on PostgreSQL. Bounded: a few examples per operation."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.api.conftest import Api

API = "/api/v1"
EXAMPLES = 12


def _operations(api: Api) -> list[Any]:
    # The schema is behind a login: fetched with a token, then bound to the app.
    schema = schemathesis.openapi.from_dict(api.get(f"{API}/openapi.json").json())
    schema.app = api.app
    schema.location = f"{API}/openapi.json"
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method.upper() == "GET" or op.path == f"{API}/files/{{file_id}}/corrections":
            ops.append(op)
    return ops


class _Failed(AssertionError):
    """A check failed on a response (recorded, then the next operation is tried)."""


def _fuzz(op: Any, mode: str, ids: list[int], headers: dict[str, str]) -> tuple[int, str | None]:
    """Run ``op`` on :data:`EXAMPLES` generated cases: how many ran, and the first failure."""
    from schemathesis import GenerationMode

    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    calls: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation), file_id=st.sampled_from([*ids, 987654]))
    def check(case: Any, file_id: int) -> None:
        if mode == "positive" and "file_id" in (case.path_parameters or {}):
            case.path_parameters["file_id"] = file_id  # mostly files that exist
        response = case.call(headers=headers)
        calls.append(response.status_code)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except AssertionError as exc:
            raise _Failed(f"{op.method.upper()} {op.path}: {exc}"[:3000]) from exc

    try:
        check()
    except _Failed as exc:
        return len(calls), str(exc)
    except Unsatisfiable:
        assert mode == "negative"  # an operation without parameters has no invalid input
    return len(calls), None


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_schema_holds_and_nothing_is_a_server_error(api: Api, mode: str) -> None:
    ops = _operations(api)
    paths = {(op.method.upper(), op.path) for op in ops}
    assert ("GET", f"{API}/files") in paths
    assert ("POST", f"{API}/files/{{file_id}}/corrections") in paths
    assert len(paths) >= 12
    ids = [h["id"] for h in api.all_files(limit=200)]
    failures = []
    total = 0
    for op in ops:
        calls, failure = _fuzz(op, mode, ids, api.headers("analyst"))
        total += calls
        if failure is not None:
            failures.append(failure)
    assert not failures, "\n\n".join(failures)
    assert total >= len(ops) * 2  # generation really ran
