"""Both editions send the very same bytes for the same input, ``Date`` aside.

This is what "one protocol core" promises: the shells only move bytes.
"""

from __future__ import annotations

import pytest
from cases import CASES, Case
from support import RunningServer, exchange_raw, without_date


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_same_bytes(case: Case, shared_servers: dict[str, RunningServer]) -> None:
    threaded = exchange_raw(shared_servers["threaded"].port, case.data)
    asyncio = exchange_raw(shared_servers["asyncio"].port, case.data)
    assert threaded, "threaded sent nothing"
    assert without_date(threaded) == without_date(asyncio)
