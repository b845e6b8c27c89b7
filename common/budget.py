"""``--max-requests``: the book's ``take(2)``, counted in responses."""

from __future__ import annotations

import itertools


class RequestBudget:
    """Counts responses; says when the one that exhausts the budget is sent.

    ``next()`` on an ``itertools.count`` is a single C call, atomic under the
    GIL, so pool workers may share one budget without a lock of our own.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._counter = itertools.count(1)

    def spend(self) -> bool:
        """Record one response; True exactly once, when the limit is reached."""
        if self.limit is None:
            return False
        return next(self._counter) == self.limit
