"""RFC 9110/9112 conformance of both editions, over real sockets.

Every case in ``cases.CASES`` names the rule it checks. After each one the
same server must still answer a fresh ``GET /``: no input may break it. The
threaded edition runs them twice: on its pool and with ``--spawn``.
"""

from __future__ import annotations

import pytest
from cases import CASES, Case
from support import DESIGNS, RunningServer, exchange_raw, iter_statuses, request


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_case(
    case: Case, design: str, shared_servers: dict[str, RunningServer]
) -> None:
    port = shared_servers[design].port
    raw = exchange_raw(port, case.data, half_close=not case.waits)
    assert tuple(iter_statuses(raw)) == case.statuses, (case.rfc, raw[:300])
    assert request(port, "/").status == 200, "server stopped serving after the case"


def test_enough_cases() -> None:
    assert len(CASES) >= 50
    assert all(case.rfc.startswith("RFC ") for case in CASES)
