"""Fixtures: servers started on --port 0 and always stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support import EDITIONS, SPAWN, RunningServer, start_server

ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    """Start servers with ``factory(edition, *args)``; all are killed at the end."""
    started: list[RunningServer] = []

    def factory(edition: str, *args: str, cwd: str | None = None) -> RunningServer:
        server = start_server(edition, *args, cwd=cwd)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.kill()


@pytest.fixture(params=EDITIONS)
def edition(request: pytest.FixtureRequest) -> str:
    """Each end-to-end test runs once per edition."""
    return str(request.param)


@pytest.fixture
def server(edition: str, server_factory: ServerFactory) -> RunningServer:
    """A server of ``edition`` with a short /sleep and the access log on."""
    return server_factory(edition, "--sleep-seconds", "0.2")


@pytest.fixture(scope="session")
def shared_servers() -> Iterator[dict[str, RunningServer]]:
    """One long-lived server per edition (and one of ``--spawn``), for
    read-only tests that may share one."""
    servers: dict[str, RunningServer] = {}
    try:
        for name in EDITIONS:
            servers[name] = start_server(name, "--sleep-seconds", "0.2")
        # The threaded edition without its pool (Listing 21-11), under "spawn".
        servers[SPAWN] = start_server("threaded", "--spawn", "--sleep-seconds", "0.2")
        yield servers
    finally:
        for running in servers.values():
            running.kill()
