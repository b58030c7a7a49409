"""Settings: list format, required PUBLIC_ORIGINS, and a prompt limit that fits the broker's packet limit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.messages import MAX_PROMPT_CHARS_LIMIT, TaskMessage, encode, parse_task
from common.secret_files import ConfigError
from common.settings import load_settings
from common.topics import Topics
from devstack.local_broker import RunningBroker
from master.settings import MasterSettings
from tests.conftest import Pki
from tests.mqtt_helpers import BlockingClient
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parent.parent
LONGEST_PREFIX = "p" * 32
LONGEST_WORKER_ID = "w" * 63
# The character JSON spends most bytes on: a control character is written as \u0001 (6 bytes).
WORST_CHAR = "\x01"


def master_values(pki: Pki, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        mqtt_password_file=pki.password_path("master"), tls_ca_file=pki.ca, tls_cert_file=pki.cert("master"),
        tls_key_file=pki.key("master"), public_origins="https://chat.example.org",
    )
    values.update(overrides)
    return values


def broker_max_packet_size() -> int:
    match = re.search(r"^max_packet_size\s+(\d+)\s*$", (REPO / "mosquitto" / "mosquitto.conf").read_text(), re.M)
    assert match, "mosquitto.conf sets no max_packet_size"
    return int(match.group(1))


def largest_task(char: str) -> tuple[str, bytes]:
    """The biggest task the master can send: the longest topic, prompt, model, id and token."""
    message = TaskMessage(
        task_id="t" * 64, token="k" * 128, prompt=char * MAX_PROMPT_CHARS_LIMIT, model=char * 128,
        priority=9, deadline=9_999_999_999.999,
    )
    return Topics(LONGEST_PREFIX).tasks(LONGEST_WORKER_ID), encode(message)


def mqtt_publish_packet_size(topic: str, payload: bytes) -> int:
    """Bytes of an MQTT 3.1.1 QoS 1 PUBLISH: fixed header (1 + up to 4), topic (2 + n), packet id (2), payload."""
    return 1 + 4 + 2 + len(topic.encode()) + 2 + len(payload)


def test_public_origins_are_required(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PUBLIC_ORIGINS the master refuses to start and says what to set."""
    monkeypatch.delenv("PUBLIC_ORIGINS", raising=False)
    values = master_values(pki)
    del values["public_origins"]
    with pytest.raises(ConfigError, match=r"PUBLIC_ORIGINS is not set: set it to .*https://chat\.example\.org"):
        load_settings(MasterSettings, **values)


@pytest.mark.parametrize("bad", ["http://chat.example.org", "https://chat.example.org/chat", "chat.example.org", ","])
def test_public_origin_that_is_not_an_https_origin_is_refused(pki: Pki, bad: str) -> None:
    """An origin with another scheme, a path or no host is refused at start-up, naming the setting."""
    with pytest.raises(ConfigError, match="PUBLIC_ORIGINS"):
        load_settings(MasterSettings, **master_values(pki, public_origins=bad))


def test_list_settings_are_comma_separated(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """PUBLIC_ORIGINS and GEMINI_EXTRA_MODELS are both read from the environment as `a,b` lists."""
    monkeypatch.setenv("PUBLIC_ORIGINS", "https://a.example.org, https://b.example.org:8443/")
    monkeypatch.setenv("GEMINI_EXTRA_MODELS", "gemini-2.5-pro,gemini-2.0-flash")
    values = master_values(pki)
    del values["public_origins"]
    master = load_settings(MasterSettings, **values)
    assert master.public_origins == ("https://a.example.org", "https://b.example.org:8443")
    worker = load_settings(
        WorkerSettings, mqtt_password_file=pki.password_path("worker"), tls_ca_file=pki.ca,
        tls_cert_file=pki.cert("worker"), tls_key_file=pki.key("worker"),
    )
    assert worker.gemini_extra_models == ("gemini-2.5-pro", "gemini-2.0-flash")


def test_prompt_limit_above_the_wire_ceiling_is_refused(pki: Pki) -> None:
    """MAX_PROMPT_CHARS cannot exceed what a task can carry through the broker."""
    with pytest.raises(ConfigError, match="MAX_PROMPT_CHARS"):
        load_settings(MasterSettings, **master_values(pki, max_prompt_chars=MAX_PROMPT_CHARS_LIMIT + 1))


@pytest.mark.parametrize("char", [WORST_CHAR, "\U0001f600"], ids=["control-char", "4-byte-utf8"])
def test_largest_task_fits_the_brokers_packet_limit(char: str) -> None:
    """A task at the prompt limit in the costliest characters is smaller than mosquitto's max_packet_size."""
    topic, payload = largest_task(char)
    assert mqtt_publish_packet_size(topic, payload) <= broker_max_packet_size()


@pytest.mark.integration
def test_largest_task_passes_through_the_real_broker(broker: RunningBroker, pki: Pki) -> None:
    """The worst-case task, published by the master's user, reaches the worker intact (the broker keeps it)."""
    worker_id = "w-largest-task"
    topic = Topics("upb").tasks(worker_id)
    _, payload = largest_task(WORST_CHAR)
    worker = BlockingClient(broker.port, worker_id, "worker", pki.password("worker"), pki.tls())
    master = BlockingClient(broker.port, "master-largest-task", "master", pki.password("master"), pki.tls())
    try:
        assert worker.subscribe(topic) == [1]
        master.publish(topic, payload)
        received = worker.messages.get(timeout=10)
        assert received.payload == payload
        assert parse_task(received.payload).prompt == WORST_CHAR * MAX_PROMPT_CHARS_LIMIT
    finally:
        master.close()
        worker.close()
