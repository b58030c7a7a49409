"""devstack.local_broker.free_port: ports for test and local listeners, out of the way of outgoing connections."""

from __future__ import annotations

import socket

from devstack.local_broker import _ephemeral_ports, free_port


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    """Every port returned is below the kernel's range for outgoing connections, and free to listen on."""
    low, _ = _ephemeral_ports()
    for _ in range(20):
        port = free_port()
        assert 10_000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
