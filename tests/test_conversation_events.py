"""Property-based fuzzing (Hypothesis) of the conversation events and ai-query's conversation_id, in-process with the
real handlers, dispatcher, journal and a real store: every input gets a clear acknowledgement, and another user's
conversation is never read, joined or deleted."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from master.accounts import add_user
from master.chat_events import ChatEvents, Connection
from master.conversation_events import EVENTS, ConversationEvents
from master.conversations import Conversations
from master.dispatcher import Dispatcher
from master.intake import Intake
from master.registry import WorkerRegistry
from master.sessions import ActiveSession
from master.settings import MasterSettings
from master.store import open_database
from master.task_journal import TaskJournal
from master.user_limits import Limits, UserLimiter

pytestmark = pytest.mark.integration  # not a process, but a store and a thousand cases: kept out of the fast set
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)  # surrogates included
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | ANY_TEXT
KEYS = st.sampled_from(["conversation_id", "limit", "before", "confirm", "text"]) | ANY_TEXT


class Edge:
    """Two users on the real handlers: the fuzzer (alice) and bob, whose conversation must stay his alone."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = self.loop.run_until_complete(open_database(path))
        self.journal = TaskJournal(self.db)
        self.dispatcher = Dispatcher(WorkerRegistry(30), lambda w, m: True, lambda t, o: None, journal=self.journal)
        settings_ = MasterSettings.model_construct(max_prompt_chars=100, default_model="", log_content=False)
        intake = Intake(self.dispatcher, settings_, UserLimiter(Limits(0, 1, 0, 0)), self.db)
        sio = socketio.AsyncServer(async_mode="asgi")
        self.chat = ChatEvents(sio, intake, settings_, auth=None, db=self.db)  # type: ignore[arg-type]
        self.events = ConversationEvents(sio, self.chat, Conversations(self.db, self.dispatcher, self.journal),
                                         self.journal)
        self.handlers = {"ai-query": self.chat.on_query, "ai-conversations": self.events.on_list,
                         "ai-conversation": self.events.on_load, "ai-conversation-delete": self.events.on_delete,
                         "ai-delete-my-data": self.events.on_delete_all}
        for sid, name in (("fuzzer", "alice"), ("bob", "bob")):
            user = self.run(self.db.run(add_user, name, "hash-not-used-here", "user"))
            self.chat.connections[sid] = Connection(ActiveSession(f"h-{name}", user, 0.0))
        self.bobs = self.call("bob", "ai-query", "bob's question")["conversation_id"]

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def call(self, sid: str, event: str, *args: Any) -> Any:
        return self.run(self.handlers[event](sid, *args))

    def close(self) -> None:
        self.db.close()
        self.loop.close()


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    made = Edge(Path(tempfile.mkdtemp(prefix="aisys-conv-fuzz-")) / "m.db")
    yield made
    made.close()


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def arguments(bobs: str) -> st.SearchStrategy[list[Any]]:
    """Argument lists of any shape; conversation ids among them are bob's, random hex, or junk."""
    ids = st.sampled_from([bobs, "0" * 32, bobs.upper(), bobs + "0", ""]) | ANY_TEXT | SCALARS
    values = SCALARS | ids | st.lists(SCALARS, max_size=3)
    dicts = (st.dictionaries(KEYS, values, max_size=4)
             | st.fixed_dictionaries({"conversation_id": ids}, optional={"text": ANY_TEXT})
             | st.fixed_dictionaries({"conversation_id": ids, "text": st.just("a valid question")}))
    return st.lists(dicts | values, max_size=3)


def ids_in(value: Any) -> list[Any]:
    """Every conversation id an acknowledgement names (as `conversation_id` or `deleted`)."""
    if isinstance(value, list):
        return [i for v in value for i in ids_in(v)]
    if not isinstance(value, dict):
        return []
    own = [v for k, v in value.items() if k in ("conversation_id", "deleted") and isinstance(v, str)]
    return own + [i for v in value.values() for i in ids_in(v)]


@fuzz(1_500)
@given(data=st.data(), event=st.sampled_from(("ai-query",) + EVENTS))
def test_conversation_handlers_answer_every_input_and_never_touch_another_user(
        edge: Edge, data: Any, event: str) -> None:
    """Any argument list gets a result or an error with a code and a message; bob's conversation stays his, unread."""
    args = data.draw(arguments(edge.bobs))
    ack = edge.call("fuzzer", event, *args)
    assert isinstance(ack, dict) and ack, ack
    if "error" in ack:
        assert set(ack) == {"error"} and ack["error"]["code"] and ack["error"]["message"], ack
    else:
        assert edge.bobs not in ids_in(ack), ack  # alice never got, joined or deleted bob's conversation
    loaded = edge.call("bob", "ai-conversation", {"conversation_id": edge.bobs})
    assert [m["prompt"] for m in loaded["messages"]] == ["bob's question"], loaded
