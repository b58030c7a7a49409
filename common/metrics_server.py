"""The `/metrics` endpoint of a service (Prometheus text format), on a port of its own.

Not the published HTTPS port: in the stack only the backend network reaches it (see docs/DESIGN.md
for why it is plain HTTP without authentication there).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import start_http_server

logger = logging.getLogger(__name__)

# Buckets that resolve 1 ms to 120 s (end-to-end latency, queue wait, model calls).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@contextlib.contextmanager
def serve_metrics(host: str, port: int | None) -> Iterator[int | None]:
    """Serve the default registry on host:port (0: any free port); yields the bound port, or None when off."""
    if port is None:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise OSError(f"cannot listen for metrics on {host}:{port}: {exc.strerror} (METRICS_HOST/METRICS_PORT)") from None
    bound = int(server.server_address[1])
    logger.info("metrics on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
