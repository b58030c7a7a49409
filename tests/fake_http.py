"""What the fake model servers share: an aiohttp app on 127.0.0.1 and a free port, on the test's loop or on a
loop of its own in a thread (for tests that block, such as process-level stacks)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, AsyncContextManager, TypeVar

from aiohttp import web

T = TypeVar("T")


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 and a port the kernel picks; yields the port, cleans up at the end."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield int(port)
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def in_thread(serve: Callable[[], AsyncContextManager[T]], name: str) -> Iterator[T]:
    """Enter `serve()` on a new event loop in a thread; yields what it yields, stops it and the thread at the end."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop

        async def main() -> None:
            async with serve() as served:
                holder["served"] = served
                holder["stop"] = asyncio.Event()
                ready.set()
                await holder["stop"].wait()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError(f"{name} did not start")
    try:
        yield holder["served"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
