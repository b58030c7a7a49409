"""What both services do in `__main__`: settings, logging, run until SIGTERM/SIGINT, one-line fatal errors."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any, AsyncContextManager

import uvloop

from common.logsetup import configure_logging
from common.secret_files import ConfigError
from common.settings import CommonSettings, load_settings

logger = logging.getLogger(__name__)


async def _run_until_signal(run: Callable[[Any], AsyncContextManager[Any]], settings: CommonSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run(settings):
        await stop.wait()
        logger.info("stopping")


def service_main(
    component: str,
    settings_cls: type[CommonSettings],
    run: Callable[[Any], AsyncContextManager[Any]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop,
) -> int:
    """Run `run(settings)` until SIGTERM/SIGINT on uvloop (measured faster for both services: docs/BENCHMARKS.md)."""
    configure_logging(component, relay_native_stderr=True)  # gRPC core's own lines included
    try:
        settings = load_settings(settings_cls)
        configure_logging(component, settings.log_level)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_run_until_signal(run, settings))
    except (ConfigError, OSError) as exc:
        # One clear line: the setting, the path and the fix; no traceback.
        logger.critical("cannot start %s: %s", component, exc)
        return 2
    return 0
