"""schemathesis fuzzes every operation of /api/openapi.json against a real Herald process on loopback (the
simulator is its only provider): no answer may be a server error or contradict the documented response bodies.

schemathesis' own pytest integration does not run under pytest 9 yet (it reads `node._nodeid`), so the test drives
it: per operation its boundary cases (the coverage phase: huge numbers, long strings, missing fields) and a bounded,
derandomized (repeatable) Hypothesis run per generation mode; all failures are reported together."""
from __future__ import annotations

import asyncio
import os
from itertools import islice

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from test_cli import server  # noqa: F401  (`server`: the fixture that runs main.py on a free port)

from domain import auth
from domain.db import close_database, open_database

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
COVERAGE_CASES = 60  # per operation, so that the whole run stays near two minutes
EXAMPLES = settings(max_examples=10, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


def key_session() -> requests.Session:
    """A session that sends a key with every scope and a rate limit the fuzzing cannot reach."""
    async def create_key() -> str:
        await open_database(os.environ['HERALD_DATABASE_URL'])
        try:
            return (await auth.create_api_key('schemathesis', rate_limit_per_minute=auth.MAX_RATE_LIMIT))[1]
        finally:
            await close_database()
    session = requests.Session()
    session.headers['Authorization'] = f'Bearer {asyncio.run(create_key())}'
    return session


def check(case: schemathesis.Case, session: requests.Session) -> None:
    case.call_and_validate(session=session, checks=CHECKS, timeout=30)


def boundaries(schema, operation: schemathesis.APIOperation, session: requests.Session) -> None:
    config = schema.config.generation_for(operation=operation, phase='coverage')
    cases = schema.iter_coverage_cases(operation, generation_modes=MODES, generation_config=config)
    for case in islice(cases, COVERAGE_CASES):
        check(case, session)


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, session: requests.Session) -> None:
    @given(case=operation.as_strategy(mode))
    @EXAMPLES
    def run(case: schemathesis.Case) -> None:
        check(case, session)
    run()


def test_api_answers_every_fuzzed_request_as_documented(request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue('server')
    schema = schemathesis.openapi.from_url(f'{url}/api/openapi.json')
    session = key_session()
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        runs = {'boundary cases': lambda: boundaries(schema, operation, session),
                **{f'{mode.value} data': lambda mode=mode: fuzz(operation, mode, session) for mode in MODES}}
        for what, run in runs.items():
            try:
                run()
            except (Exception, FailureGroup) as error:  # noqa: BLE001 - collected, then reported together
                failures.append(f'{operation.label} ({what}): {error}')
    assert operations > 1
    assert not failures, '\n\n'.join(failures)
