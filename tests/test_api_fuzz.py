"""schemathesis with every check over every operation, positive and negative data, on both backends.

At least 5,000 generated cases per backend from a fixed seed, with failures kept in a
local example database so a case that failed once is replayed first on the next run.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter

import pytest
from flask import Flask

from tests.conftest import ROOT, bearer

CASES = int(os.environ.get("PARTNER_MATCH_FUZZ_CASES", "5000"))
SEED = 20261127
EXAMPLES_DB = ROOT / ".hypothesis" / "schemathesis"


@pytest.mark.slow
def test_every_check_passes_on_generated_requests(backend_app: Flask) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis.database import DirectoryBasedExampleDatabase
    from schemathesis.generation import GenerationMode

    app = backend_app
    headers = bearer(app)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    per_run = math.ceil(1.4 * CASES / (2 * len(operations)))  # operations without inputs run out early
    failures: dict[str, str] = {}
    statuses: Counter[int] = Counter()

    def check(operation, mode) -> None:  # type: ignore[no-untyped-def]
        label = f"{operation.method.upper()} {operation.path} [{mode.value}]"

        @settings(
            max_examples=per_run,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=DirectoryBasedExampleDatabase(EXAMPLES_DB),
        )
        @seed(SEED)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:  # type: ignore[no-untyped-def]
            try:  # an exception out of the app is a 500 in production: a failure like any other
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                case.validate_response(response, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # collect every distinct failure, then report all
                failures.setdefault(f"{label}: {type(exc).__name__}", str(exc)[:600])
                raise

        with contextlib.suppress(Exception, BaseExceptionGroup):  # recorded above, reported below
            run()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check(operation, mode)

    report = "\n\n".join(f"{key}\n{text}" for key, text in sorted(failures.items()))
    assert not failures, f"{len(failures)} distinct failures:\n{report}"
    assert sum(statuses.values()) >= CASES, statuses  # the run really generated that many requests
    assert statuses[200] and statuses[400] and statuses[404], statuses
