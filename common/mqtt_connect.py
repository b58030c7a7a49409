"""Build a paho-mqtt client the one way this system connects: TLS to our CA, a password, TCP_NODELAY."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.tls import TlsFiles, client_context

RECONNECT_MIN_DELAY = 1
RECONNECT_MAX_DELAY = 30


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int


def set_nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho's `on_socket_open`: TCP_NODELAY, which paho does not set (without it request/reply
    traffic stalls ~40 ms on Nagle)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def new_client(
    client_id: str,
    username: str,
    password: str,
    tls: TlsFiles,
    *,
    will: tuple[str, bytes] | None = None,
    will_retain: bool = False,
    userdata: Any = None,
) -> mqtt.Client:
    """An unconnected MQTT 3.1.1 client with TLS, credentials, optional last will and backoff."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
        userdata=userdata,
    )
    client.enable_logger(logging.getLogger("paho"))
    client.username_pw_set(username, password)
    client.tls_set_context(client_context(tls))
    client.on_socket_open = set_nodelay
    client.reconnect_delay_set(RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY)
    client.max_inflight_messages_set(100)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=will_retain)
    return client
