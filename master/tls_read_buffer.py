"""A 2 KiB read buffer per TLS connection of asyncio's own TLS transport (there is no setting for it).

CPython's `asyncio.sslproto.SSLProtocol` (3.11 and later) allocates and zero-fills a 256 KiB read
buffer per TLS connection, sized by the class attribute `max_size`: 1,000 idle chat connections cost
about 290 MB. The buffer only sizes each read (the read loop drains the socket until it is empty)
and chat frames are a few hundred bytes, so 2 KiB loses nothing (docs/BENCHMARKS.md, docs/DESIGN.md).
The attribute is set once, before the first connection, and only on the Python versions whose
`sslproto` was read for this; on any other version the patch is not applied and one warning says so.
tests/test_tls_read_buffer.py fails if a served connection's buffer is not the small one.
"""

from __future__ import annotations

import asyncio.sslproto
import logging
import sys

logger = logging.getLogger(__name__)

TLS_READ_BUFFER = 2 * 1024
# Versions whose asyncio/sslproto.py has `SSLProtocol.max_size = 256 * 1024` sizing `_ssl_buffer`.
KNOWN_VERSIONS = frozenset({(3, 11), (3, 12), (3, 13), (3, 14)})
_CPYTHON_DEFAULT = 256 * 1024

_applied: dict[str, bool] = {}


def shrink_tls_read_buffer() -> bool:
    """Once per process: set asyncio's per-connection TLS read buffer to 2 KiB; True if it is in effect."""
    if "result" not in _applied:
        _applied["result"] = reduce_read_buffer((sys.version_info.major, sys.version_info.minor))
    return _applied["result"]


def reduce_read_buffer(version: tuple[int, int]) -> bool:
    """Set `SSLProtocol.max_size` to 2 KiB if `version` is one whose sslproto is known; else warn and leave it."""
    protocol = asyncio.sslproto.SSLProtocol
    current = getattr(protocol, "max_size", None)
    if version not in KNOWN_VERSIONS or current not in (_CPYTHON_DEFAULT, TLS_READ_BUFFER):
        logger.warning(
            "TLS read buffer not reduced: asyncio.sslproto of Python %d.%d is not a known version "
            "(SSLProtocol.max_size=%r), so each HTTPS connection may cost about 256 KiB more memory; "
            "read asyncio/sslproto.py of this version and update master/tls_read_buffer.py",
            version[0], version[1], current,
        )
        return False
    protocol.max_size = TLS_READ_BUFFER
    return True
