"""Timing re-runs of suspect tests inside the process that just ran the suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from _pytest.runner import runtestprotocol


class InProcessSampler:
    """Runs items again without logging their reports: the terminal, junitxml, the exit status
    and the selfheal recorder (which starts a test's span when its start is logged) never see
    these runs. Measured in the same process as the suite's own run, so a
    slow-down has to show against the suite's conditions rather than a fresh interpreter's."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session

    def __call__(
        self, nodeids: Sequence[str], counts: Mapping[str, int]
    ) -> Mapping[str, tuple[int, ...]]:
        items = {item.nodeid: item for item in self.session.items}
        result: dict[str, tuple[int, ...]] = {}
        try:
            for nodeid in nodeids:
                item = items.get(nodeid)
                if item is not None:
                    result[nodeid] = self._sample(item, max(1, counts.get(nodeid, 1)))
        finally:
            self.session._setupstate.teardown_exact(None)
        return result

    def _sample(self, item: pytest.Item, times: int) -> tuple[int, ...]:
        # Keep module- and session-scoped fixtures alive between runs, as the suite did.
        sibling = next(
            (i for i in self.session.items if i is not item and i.parent is item.parent), None
        )
        # Leave only this item's collectors set up (the previous suspect's module may differ).
        self.session._setupstate.teardown_exact(item)
        durations = []
        for _ in range(times):
            reports = runtestprotocol(item, nextitem=sibling, log=False)
            item._initrequest()  # type: ignore[attr-defined]  # fresh function fixtures
            call = [r for r in reports if r.when == "call"]
            if all(r.passed for r in reports) and call:
                durations.append(int(call[0].duration * 1e9))
        return tuple(durations)
