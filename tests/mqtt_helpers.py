"""Test-side MQTT: raw CONNECT/CONNACK bytes for exact codes, and a blocking paho client."""

from __future__ import annotations

import queue
import socket
import ssl
import struct
import threading
import itertools
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.tls import TlsFiles, client_context

CONNACK_ACCEPTED = 0
CONNACK_NOT_AUTHORISED = 5
_barriers = itertools.count()


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, username: str | None = None, password: str | None = None) -> bytes:
    """An MQTT 3.1.1 CONNECT packet (clean session, keepalive 30)."""
    flags = 0x02
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
    if password is not None:
        flags |= 0x40
        payload += _utf8(password)
    variable = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raw_connack(sock: socket.socket, client_id: str, username: str | None, password: str | None) -> int:
    """Send CONNECT on an open (TLS) socket and return the CONNACK return code byte."""
    sock.sendall(connect_packet(client_id, username, password))
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r} without a CONNACK")
        data += chunk
    if data[0] != 0x20 or data[1] != 0x02:
        raise AssertionError(f"not a CONNACK: {data!r}")
    return data[3]


def tls_socket(port: int, ctx: ssl.SSLContext, server_name: str = "localhost") -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


@dataclass
class Received:
    topic: str
    payload: bytes


def paho_client(client_id: str, username: str, password: str, tls: TlsFiles) -> mqtt.Client:
    """A paho client that connects as the services do: MQTT 3.1.1, clean session, our CA, a password."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
    client.username_pw_set(username, password)
    client.tls_set_context(client_context(tls))
    return client


class BlockingClient:
    """A connected paho client (on paho's own thread) with a queue of what it receives."""

    def __init__(self, port: int, client_id: str, username: str, password: str, tls: TlsFiles,
                 *, keep_retained: bool = False) -> None:
        self.keep_retained = keep_retained
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._subacks: queue.Queue[list[int]] = queue.Queue()
        self._pubacks: dict[int, threading.Event] = {}
        self.connect_rc: int | None = None
        self.client = paho_client(client_id, username, password, tls)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # paho's own network thread, retrying with backoff until it gets through.
        self.client.connect_async("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(5):
            self.close()
            raise TimeoutError("no CONNACK within 5 s")
        if self.connect_rc != 0:
            self.close()
            raise ConnectionRefusedError(f"CONNACK reason {self.connect_rc}")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self.connect_rc = rc.value if hasattr(rc, "value") else int(rc)  # type: ignore[arg-type]
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and not self.keep_retained:
            # Kept by the broker from before this client subscribed (e.g. another test's last will on the
            # shared broker): not something this test sent. Live messages arrive with retain unset.
            return
        self.messages.put(Received(msg.topic, msg.payload))

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, codes: list, props: object) -> None:
        self._subacks.put([c.value for c in codes])

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its granted codes."""
        self.client.subscribe(topic, qos)
        return self._subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait until the broker acknowledged it (PUBACK at QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)

    def received_so_far(self) -> list[Received]:
        """Everything already received and not yet taken, without waiting."""
        out: list[Received] = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def barrier(self) -> None:
        """A round trip through the broker: once it returns, every message routed to this client before it
        is in `messages` (mosquitto writes one client's packets in order; paho handles them in order)."""
        self.subscribe(f"barrier/{next(_barriers)}")  # returns on the SUBACK, whatever code it grants

    def close(self) -> None:
        """Disconnect and stop paho's thread; unhook our callbacks so the client is freed (and its sockets closed) now."""
        self.client.disconnect()
        self.client.loop_stop()
        # paho closes loop_start's socket pair only in Client.__del__: left in a cycle with us, the garbage
        # collector may finalize those sockets first, which is an "unclosed socket" ResourceWarning.
        self.client.on_connect = self.client.on_message = self.client.on_subscribe = None
