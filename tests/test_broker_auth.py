"""The real mosquitto with our config refuses every insecure or unauthenticated client."""

from __future__ import annotations

import gc
import socket
import ssl
import warnings

import pytest

from devstack.local_broker import RunningBroker
from common.tls import client_context
from tests.pki_helpers import Pki
from tests.mqtt_helpers import (
    CONNACK_ACCEPTED,
    CONNACK_NOT_AUTHORISED,
    BlockingClient,
    connect_packet,
    paho_client,
    raw_connack,
    tls_socket,
)

pytestmark = pytest.mark.integration


def test_master_with_right_password_is_accepted(broker: RunningBroker, pki: Pki) -> None:
    """Control: the right password over TLS gets CONNACK 0 (so the refusals below mean something)."""
    with tls_socket(broker.port, client_context(pki.tls())) as s:
        assert raw_connack(s, "master-test", "master", pki.password("master")) == CONNACK_ACCEPTED


def test_anonymous_client_gets_connack_5(broker: RunningBroker, pki: Pki) -> None:
    """No username: CONNACK 5 (not authorised)."""
    with tls_socket(broker.port, client_context(pki.tls())) as s:
        assert raw_connack(s, "anon", None, None) == CONNACK_NOT_AUTHORISED


def test_wrong_password_gets_connack_5(broker: RunningBroker, pki: Pki) -> None:
    """Right user, wrong password: CONNACK 5."""
    with tls_socket(broker.port, client_context(pki.tls())) as s:
        assert raw_connack(s, "w1", "worker", pki.password("worker") + "x") == CONNACK_NOT_AUTHORISED


def test_unknown_user_gets_connack_5(broker: RunningBroker, pki: Pki) -> None:
    """A user the password file does not know: CONNACK 5."""
    with tls_socket(broker.port, client_context(pki.tls())) as s:
        assert raw_connack(s, "w1", "admin", pki.password("master")) == CONNACK_NOT_AUTHORISED


def test_one_users_password_does_not_log_in_the_other(broker: RunningBroker, pki: Pki) -> None:
    """The worker's password does not authenticate the master user."""
    with tls_socket(broker.port, client_context(pki.tls())) as s:
        assert raw_connack(s, "m", "master", pki.password("worker")) == CONNACK_NOT_AUTHORISED


def test_production_client_sees_refusal_as_not_authorised(broker: RunningBroker, pki: Pki) -> None:
    """Our paho client factory reports a wrong password as 'Not authorized' (MQTT 5 code 0x87)."""
    with pytest.raises(ConnectionRefusedError, match="135"):
        BlockingClient(broker.port, "w-bad", "worker", "wrong-password", pki.tls())


def test_plaintext_client_gets_no_connack(broker: RunningBroker, pki: Pki) -> None:
    """A plaintext CONNECT on the TLS port gets no CONNACK: the broker closes the connection."""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
        s.sendall(connect_packet("plain", "master", pki.password("master")))
        data = b""
        try:
            while chunk := s.recv(64):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not data.startswith(b"\x20"), f"got a CONNACK over plaintext: {data!r}"


def test_client_trusting_another_ca_refuses_the_broker(broker: RunningBroker, other_pki: Pki) -> None:
    """A client that trusts only another CA fails the handshake with 'certificate verify failed'."""
    with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
        tls_socket(broker.port, client_context(other_pki.tls()))
    assert excinfo.value.reason == "CERTIFICATE_VERIFY_FAILED"


def test_mqtt_client_whose_handshake_fails_leaves_no_socket_open(broker: RunningBroker, other_pki: Pki) -> None:
    """paho over our client context, trusting another CA: the handshake fails and its socket is closed, not leaked."""
    client = paho_client("leak-check", "master", "not-used", other_pki.tls())
    gc.collect()  # what earlier tests left is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
            client.connect("127.0.0.1", broker.port)
        del client, excinfo  # the traceback holds paho's frames, and with them the socket
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_broker_certificate_name_is_checked(broker: RunningBroker, pki: Pki) -> None:
    """Dialling the broker by a name its certificate lacks fails host name verification."""
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        tls_socket(broker.port, client_context(pki.tls()), server_name="evil.example.org")


def _tls_client_pinned_to(version: ssl.TLSVersion, pki: Pki) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(pki.ca))
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let our side offer TLS 1.1, so the refusal is the broker's
    return ctx


def test_tls_1_1_client_is_refused_by_the_broker(broker: RunningBroker, pki: Pki) -> None:
    """A TLS 1.1-only client gets the broker's protocol_version alert."""
    with pytest.raises(ssl.SSLError) as excinfo:
        tls_socket(broker.port, _tls_client_pinned_to(ssl.TLSVersion.TLSv1_1, pki))
    assert excinfo.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"


def test_tls_1_2_client_is_accepted(broker: RunningBroker, pki: Pki) -> None:
    """Control for the test above: the same client pinned to TLS 1.2 connects."""
    with tls_socket(broker.port, _tls_client_pinned_to(ssl.TLSVersion.TLSv1_2, pki)) as s:
        assert s.version() == "TLSv1.2"
