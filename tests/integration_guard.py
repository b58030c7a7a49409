"""A pytest plugin that fails a test which starts a process or a server but is not marked `integration`.

`scripts/test.sh -m "not integration"` is the fast set only while every test that starts something
carries the marker. The guard watches what really happens, whatever helper does it: a process
(`subprocess`, asyncio subprocesses, `os.system`, `fork`, `posix_spawn`), a listening socket (asyncio,
aiohttp, hypercorn servers) or a gRPC server. A start is charged to the test whose setup or call makes
it, and to the fixture that makes it: a later test that uses that fixture (a session fixture such as
`broker`, started once for the whole run) must be marked too, whichever test happened to start it.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

MARKER = "integration"


def _describe_popen(args: tuple[Any, ...]) -> str:
    # Popen._execute_child(self, args, executable, ...)
    argv = args[1] if len(args) > 1 else "?"
    return f"process {argv!r}"


def _describe_listen(args: tuple[Any, ...]) -> str:
    try:
        where = args[0].getsockname()
    except OSError:
        where = "?"
    return f"listening socket {where!r}"


class IntegrationGuard:
    """Records every process and server start and charges it to the running test and fixture."""

    def __init__(self) -> None:
        self._starts: list[str] = []
        self._fixture_starts: dict[pytest.FixtureDef[Any], list[str]] = {}
        self._restore: list[tuple[Any, str, Any]] = []

    # -- recording ----------------------------------------------------------------------------

    def _record(self, what: str) -> None:
        self._starts.append(what)

    def _wrap(self, owner: Any, name: str, describe: Callable[[tuple[Any, ...]], str]) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        record = self._record

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record(describe(args))
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)
        self._restore.append((owner, name, original))

    def install(self) -> None:
        """Wrap the calls that start processes and servers (they keep working; each call is recorded)."""
        self._wrap(subprocess.Popen, "_execute_child", _describe_popen)
        self._wrap(os, "system", lambda a: f"process {a[0]!r} (os.system)")
        self._wrap(os, "fork", lambda a: "process (os.fork)")
        self._wrap(os, "posix_spawn", lambda a: f"process {a[0]!r} (posix_spawn)")
        self._wrap(os, "posix_spawnp", lambda a: f"process {a[0]!r} (posix_spawnp)")
        self._wrap(socket.socket, "listen", _describe_listen)
        self._wrap(grpc, "server", lambda a: "gRPC server")
        self._wrap(grpc.aio, "server", lambda a: "gRPC server (grpc.aio)")

    def uninstall(self) -> None:
        while self._restore:
            owner, name, original = self._restore.pop()
            setattr(owner, name, original)

    # -- pytest hooks ---------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        """Remember which fixtures start something, for the tests that use them after they are set up."""
        before = len(self._starts)
        try:
            return (yield)
        finally:
            if made := self._starts[before:]:
                self._fixture_starts[fixturedef] = made

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        """Starts during setup (fixtures made for this test) and by fixtures set up earlier."""
        before = len(self._starts)
        result = yield
        self._check(item, [*self._starts[before:], *self._started_by_fixtures_of(item)])
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """Starts in the test's own body (teardown only stops what setup started, so it is not checked)."""
        before = len(self._starts)
        result = yield
        self._check(item, self._starts[before:])
        return result

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.uninstall()

    # -- the check ------------------------------------------------------------------------------

    def _started_by_fixtures_of(self, item: pytest.Item) -> Iterator[str]:
        """What the fixtures this test uses started, even when an earlier test set them up."""
        info = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            for fixturedef in info.name2fixturedefs.get(name, ()) if info is not None else ():
                if (made := self._fixture_starts.get(fixturedef)) is not None:
                    yield f"{', '.join(dict.fromkeys(made))} (fixture {fixturedef.argname!r})"

    @staticmethod
    def _check(item: pytest.Item, started: list[str]) -> None:
        if not started or item.get_closest_marker(MARKER) is not None:
            return
        what = "; ".join(dict.fromkeys(started))
        pytest.fail(
            f"{item.nodeid} starts {what} but is not marked `{MARKER}`: add @pytest.mark.{MARKER} "
            f"(or a module-level pytestmark) so that -m \"not {MARKER}\" stays the fast, process-free set",
            pytrace=False,
        )


def register(config: pytest.Config) -> IntegrationGuard:
    """Install the guard for this pytest run (call from a conftest's `pytest_configure`)."""
    guard = IntegrationGuard()
    guard.install()
    config.pluginmanager.register(guard, "integration-guard")
    return guard
