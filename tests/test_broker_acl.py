"""The broker's ACL, asserted by what is delivered.

Mosquitto grants a denied SUBSCRIBE and acknowledges a denied QoS 1 PUBLISH, then silently
drops the messages; so every test here checks what arrives. After each denied message a
permitted "sentinel" message goes to the same subscriber: once the sentinel arrives, the denied
message (published and acknowledged earlier, through the same single-threaded broker) would
have arrived before it.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Iterator

import pytest

from devstack.local_broker import RunningBroker
from common.topics import Topics
from tests.pki_helpers import Pki
from tests.mqtt_helpers import BlockingClient, Received

pytestmark = pytest.mark.integration
T = Topics("upb")
_ids = itertools.count()


def wait_for_sentinel(client: BlockingClient, sentinel: bytes, timeout: float = 5.0) -> list[Received]:
    """Everything `client` has received up to and including the sentinel (no fixed wait after it).

    Every message a test checks for was published, and acknowledged, before the sentinel; the broker
    routes them in that order and writes one client's packets in order, so a denied message that got
    through would be in the list before the sentinel. Whatever is already queued after it is included too.
    """
    got: list[Received] = []
    deadline = time.monotonic() + timeout
    while not any(m.payload == sentinel for m in got):
        left = deadline - time.monotonic()
        assert left > 0, f"sentinel {sentinel!r} never arrived; got {got}"
        try:
            got.append(client.messages.get(timeout=left))
        except queue.Empty:
            continue
    return got + client.received_so_far()


@pytest.fixture
def clients(broker: RunningBroker, pki: Pki) -> Iterator[dict[str, BlockingClient]]:
    """A master and workers a and b, each with a fresh unique id."""
    n = next(_ids)
    made = {
        "master": BlockingClient(broker.port, f"master-{n}", "master", pki.password("master"), pki.tls()),
        "a": BlockingClient(broker.port, f"wa{n}", "worker", pki.password("worker"), pki.tls()),
        "b": BlockingClient(broker.port, f"wb{n}", "worker", pki.password("worker"), pki.tls()),
    }
    try:
        yield made
    finally:
        for c in made.values():
            c.close()


def wid(clients: dict[str, BlockingClient], name: str) -> str:
    """The client id (= worker id) of one of the fixture's clients."""
    return clients[name].client._client_id.decode()


def test_master_task_for_a_reaches_a(clients: dict[str, BlockingClient]) -> None:
    """Control: the master's task for worker a is delivered to a."""
    a = wid(clients, "a")
    assert clients["a"].subscribe(T.tasks(a)) == [1]
    clients["master"].publish(T.tasks(a), b"task-for-a")
    got = wait_for_sentinel(clients["a"], b"task-for-a")
    assert [m.payload for m in got] == [b"task-for-a"]


def test_worker_subscribed_to_another_workers_tasks_receives_nothing(clients: dict[str, BlockingClient]) -> None:
    """b subscribes to a's task topic (granted, per mosquitto) but gets none of a's tasks."""
    a, b = wid(clients, "a"), wid(clients, "b")
    clients["b"].subscribe(T.tasks(a))
    clients["b"].subscribe(T.tasks(b))
    clients["a"].subscribe(T.tasks(a))
    clients["master"].publish(T.tasks(a), b"secret-task-for-a")
    clients["master"].publish(T.tasks(b), b"sentinel-b")
    got_b = wait_for_sentinel(clients["b"], b"sentinel-b")
    assert [m.payload for m in got_b] == [b"sentinel-b"]
    assert b"secret-task-for-a" in [m.payload for m in wait_for_sentinel(clients["a"], b"secret-task-for-a")]


def test_worker_subscribed_to_everything_gets_only_its_own(clients: dict[str, BlockingClient]) -> None:
    """b subscribes to '#': of all the traffic, only b's own task reaches it."""
    a, b = wid(clients, "a"), wid(clients, "b")
    clients["b"].subscribe("#")
    clients["master"].publish(T.tasks(a), b"task-a")
    clients["a"].publish(T.status(a), b'{"state":"idle"}')
    clients["master"].publish(T.tasks(b), b"task-b")
    got = wait_for_sentinel(clients["b"], b"task-b")
    assert [(m.topic, m.payload) for m in got] == [(T.tasks(b), b"task-b")]


def test_task_published_by_a_worker_is_never_delivered(clients: dict[str, BlockingClient]) -> None:
    """A worker may not write task topics: its 'tasks' reach neither the other worker nor itself."""
    a, b = wid(clients, "a"), wid(clients, "b")
    clients["a"].subscribe(T.tasks(a))
    clients["b"].subscribe(T.tasks(b))
    clients["a"].publish(T.tasks(b), b"forged-for-b")
    clients["a"].publish(T.tasks(a), b"forged-for-a")
    clients["master"].publish(T.tasks(b), b"sentinel-b")
    clients["master"].publish(T.tasks(a), b"sentinel-a")
    assert [m.payload for m in wait_for_sentinel(clients["b"], b"sentinel-b")] == [b"sentinel-b"]
    assert [m.payload for m in wait_for_sentinel(clients["a"], b"sentinel-a")] == [b"sentinel-a"]


def test_worker_cannot_publish_another_workers_status(clients: dict[str, BlockingClient]) -> None:
    """a's forged status for b never reaches the master; a's own status does."""
    a, b = wid(clients, "a"), wid(clients, "b")
    clients["master"].subscribe(T.all_status)
    clients["a"].publish(T.status(b), b'{"state":"offline"}')
    clients["a"].publish(T.status(a), b"sentinel-status-a")
    got = wait_for_sentinel(clients["master"], b"sentinel-status-a")
    assert [(m.topic, m.payload) for m in got] == [(T.status(a), b"sentinel-status-a")]


def test_master_cannot_read_tasks_or_write_status(clients: dict[str, BlockingClient]) -> None:
    """The master reads no task topic and cannot forge a worker's status."""
    a = wid(clients, "a")
    clients["master"].subscribe(T.tasks("+"))
    clients["master"].subscribe(T.all_status)
    clients["master"].publish(T.tasks(a), b"task-a")
    clients["master"].publish(T.status(a), b"forged-by-master")
    clients["a"].publish(T.status(a), b"sentinel")
    got = wait_for_sentinel(clients["master"], b"sentinel")
    assert [m.payload for m in got] == [b"sentinel"]


def test_nothing_outside_the_protocol_topics_is_delivered(clients: dict[str, BlockingClient]) -> None:
    """Topics outside upb/workers/... are closed to everyone, including the master."""
    a = wid(clients, "a")
    clients["master"].subscribe("#")
    clients["a"].subscribe("#")
    clients["master"].publish("upb/broadcast", b"m-broadcast")
    clients["a"].publish("other/topic", b"a-other")
    clients["a"].publish("$SYS/fake", b"a-sys")
    clients["a"].publish(T.status(a), b"sentinel-status")
    clients["master"].publish(T.tasks(a), b"sentinel-task")
    assert [m.payload for m in wait_for_sentinel(clients["master"], b"sentinel-status")] == [b"sentinel-status"]
    assert [m.payload for m in wait_for_sentinel(clients["a"], b"sentinel-task")] == [b"sentinel-task"]


def test_master_cancel_reaches_only_its_worker(clients: dict[str, BlockingClient]) -> None:
    """The master's cancel for a reaches a; b, subscribed to a's cancel topic (granted), gets only its own."""
    a, b = wid(clients, "a"), wid(clients, "b")
    assert clients["a"].subscribe(T.cancel(a)) == [1]
    clients["b"].subscribe(T.cancel(a))
    clients["b"].subscribe(T.cancel(b))
    clients["master"].publish(T.cancel(a), b"stop-for-a")
    clients["master"].publish(T.cancel(b), b"sentinel-b")
    assert [m.payload for m in wait_for_sentinel(clients["b"], b"sentinel-b")] == [b"sentinel-b"]
    assert [m.payload for m in wait_for_sentinel(clients["a"], b"stop-for-a")] == [b"stop-for-a"]


def test_cancel_published_by_a_worker_is_never_delivered(clients: dict[str, BlockingClient]) -> None:
    """A worker may not write cancel topics: a's forged cancel for b (or itself) never arrives."""
    a, b = wid(clients, "a"), wid(clients, "b")
    clients["a"].subscribe(T.cancel(a))
    clients["b"].subscribe(T.cancel(b))
    clients["a"].publish(T.cancel(b), b"forged-for-b")
    clients["a"].publish(T.cancel(a), b"forged-for-a")
    clients["master"].publish(T.cancel(b), b"sentinel-b")
    clients["master"].publish(T.cancel(a), b"sentinel-a")
    assert [m.payload for m in wait_for_sentinel(clients["b"], b"sentinel-b")] == [b"sentinel-b"]
    assert [m.payload for m in wait_for_sentinel(clients["a"], b"sentinel-a")] == [b"sentinel-a"]


@pytest.mark.parametrize("client_id", ["+", "#"])
def test_wildcard_client_id_reads_no_tasks(broker: RunningBroker, pki: Pki, clients: dict[str, BlockingClient], client_id: str) -> None:
    """A worker whose client id is a wildcard gets no %c substitution: it reads nobody's tasks."""
    a = wid(clients, "a")
    rogue = BlockingClient(broker.port, client_id, "worker", pki.password("worker"), pki.tls())
    try:
        rogue.subscribe(T.tasks("+"))
        rogue.subscribe(T.tasks(client_id) if client_id == "+" else "upb/workers/#")
        clients["a"].subscribe(T.tasks(a))
        clients["master"].publish(T.tasks(a), b"task-for-a")
        wait_for_sentinel(clients["a"], b"task-for-a")
        # A wildcard id may read no topic at all, so no permitted message can reach the rogue: its own
        # round trip through the broker (a SUBACK, written after anything routed to it before) is the sentinel.
        rogue.barrier()
        assert rogue.received_so_far() == []
    finally:
        rogue.close()
