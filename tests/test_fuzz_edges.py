"""Property-based fuzzing (Hypothesis, 10,000 cases in all) of the edges: Socket.IO handlers, MQTT parsers, gRPC result edge.

Each bad input gets a clear error or is dropped; no exception escapes; a normal question from another
client is queued during and after. In-process, with the real handlers, dispatcher and parsers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.messages import MessageError, StatusMessage, TaskMessage, parse_status, parse_task
from common.rpc import worker_pb2
from master.accounts import User
from master.chat_events import ChatEvents, Connection
from master.dispatcher import Dispatcher, ResultRefused
from master.intake import Intake
from master.registry import WorkerRegistry
from master.results import result_from_message
from master.sessions import ActiveSession
from master.settings import MasterSettings
from master.user_limits import Limits, UserLimiter

pytestmark = pytest.mark.integration  # not a process, but a minute of work: kept out of the fast set
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=64)  # surrogates included
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT | st.sampled_from(["text", "model"]), inner, max_size=4),
    max_leaves=5,
)
QUERY_LIKE = st.fixed_dictionaries({}, optional={"text": JSON_VALUES | ANY_TEXT, "model": JSON_VALUES | ANY_TEXT})
def fuzz(examples: int) -> settings:
    """Repeatable runs (derandomized, no example database in the tree), no per-example deadline."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Edge:
    """The real ChatEvents, dispatcher and registry, with a publish that records what it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[str, TaskMessage]] = []
        self.dispatcher = Dispatcher(WorkerRegistry(30), self._publish, lambda task, outcome: None, max_queue=1_000_000)
        self.dispatcher.on_status("w1", StatusMessage(state="idle", capacity=4, free_slots=4, models=("echo",)))
        settings_ = MasterSettings.model_construct(max_prompt_chars=100, default_model="", log_content=False)
        intake = Intake(self.dispatcher, settings_, UserLimiter(Limits(0, 1, 0, 0)), db=None)  # type: ignore[arg-type]
        self.chat = ChatEvents(socketio.AsyncServer(async_mode="asgi"), intake, settings_, auth=None,  # type: ignore[arg-type]
                               db=None)  # type: ignore[arg-type]
        for sid, uid in (("fuzzer", 1), ("bystander", 2)):
            self.chat.connections[sid] = Connection(ActiveSession(f"h{uid}", User(uid, f"u{uid}", "user", False), 0.0))
        self.loop = asyncio.new_event_loop()

    def _publish(self, worker_id: str, task: TaskMessage) -> bool:
        self.published.append((worker_id, task))
        return True

    def query(self, sid: str, *args: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self.chat.on_query(sid, *args))

    def bystander_is_served(self) -> None:
        ack = self.query("bystander", "a normal question")
        assert "task_id" in ack, ack
        assert self.dispatcher.tasks[ack["task_id"]].prompt == "a normal question"


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    made = Edge()
    yield made
    made.loop.close()


def assert_ack(ack: Any) -> None:
    assert isinstance(ack, dict) and (set(ack) == {"task_id"} or set(ack) == {"error"}), ack
    if "error" in ack:
        assert ack["error"]["code"] and ack["error"]["message"], ack


@fuzz(2_500)
@given(args=st.lists(JSON_VALUES | QUERY_LIKE, max_size=3))
def test_ai_query_handler_answers_every_input(edge: Edge, args: list[Any]) -> None:
    """Any argument list (types, counts, surrogates, sizes) gets a task id or a clear error, never an exception."""
    ack = edge.query("fuzzer", *args)
    assert_ack(ack)
    if "task_id" in ack:  # what the edge accepted is valid text within the limit
        prompt = edge.dispatcher.tasks[ack["task_id"]].prompt
        assert 0 < len(prompt) <= 100 and prompt.encode("utf-8")


def test_bystander_is_served_during_and_after_the_fuzzing(edge: Edge) -> None:
    """After everything the fuzzer sent (this runs after it in the module), another user's question is queued."""
    edge.bystander_is_served()


@fuzz(2_500)
@given(event=ANY_TEXT, args=st.lists(JSON_VALUES, max_size=3))
def test_unknown_and_reserved_events_never_raise(edge: Edge, event: str, args: list[Any]) -> None:
    """The catch-all and the reserved-name handlers take anything a client can send."""
    assert_ack(edge.loop.run_until_complete(edge.chat.on_unknown_event(event, "fuzzer", *args)))
    edge.loop.run_until_complete(edge.chat.on_connect("fuzzer", *args))  # reserved: ignored, the client is connected
    assert "fuzzer" in edge.chat.connections


@fuzz(2_500)
@given(payload=st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_mqtt_parsers_accept_or_raise_message_error(payload: bytes) -> None:
    """Status and task payloads: a valid message or MessageError naming what is wrong, nothing else."""
    for parse in (parse_status, parse_task):
        try:
            parse(payload)
        except MessageError as exc:
            assert str(exc).startswith("malformed ")


@fuzz(2_500)
@given(task_id=ANY_TEXT, worker_id=ANY_TEXT, token=ANY_TEXT, answer=st.none() | ANY_TEXT,
       code=ANY_TEXT, message=ANY_TEXT)
def test_result_edge_refuses_or_accepts_never_raises(
        edge: Edge, task_id: str, worker_id: str, token: str, answer: str | None, code: str, message: str) -> None:
    """A result with any fields is refused (not found / not assigned / wrong token) or accepted; nothing else."""
    try:
        result = worker_pb2.TaskResult(task_id=task_id, worker_id=worker_id, token=token, model="echo")
    except ValueError:
        return  # protobuf refuses strings that are not valid UTF-8: gRPC would never deliver them
    if answer is None:
        result.error.code, result.error.message = code, message
    else:
        try:
            result.answer = answer
        except ValueError:
            return
    try:
        edge.dispatcher.accept_result(result_from_message(result))
    except ResultRefused:
        pass
