"""The one gRPC keepalive policy, for both ends of the results channel.

The worker pings an idle channel every `KEEPALIVE_S`; the master accepts pings that often (half
of it, for slack) even with no call open. If the two disagreed, gRPC's server would answer the
pings with GOAWAY `too_many_pings` and break the stream with results in flight.
"""

from __future__ import annotations

KEEPALIVE_S = 30.0


def client_options(keepalive_s: float = KEEPALIVE_S) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(max(keepalive_s / 2, 1.0) * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(keepalive_s: float = KEEPALIVE_S) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(keepalive_s * 1000 / 2)),
        ("grpc.http2.min_ping_interval_without_data_ms", int(keepalive_s * 1000 / 2)),
        ("grpc.http2.max_ping_strikes", 2),
    ]
