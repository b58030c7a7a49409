"""The chat's conversation events (Socket.IO, each answered through its acknowledgement).

- `ai-conversations {limit?, before?}`: the user's conversations, most recently used first, a page at a time.
- `ai-conversation {conversation_id}`: one conversation and its messages (question, answer or error), in order.
- `ai-conversation-delete {conversation_id}`: delete it and its tasks (open ones are cancelled first).
- `ai-delete-my-data {confirm: true}`: delete all of the user's conversations and tasks (the login stays).

`ai-query` takes an optional `conversation_id` (`choose`): one of the asker's own, or none to start a new one.
Another user's conversation id gets exactly the answer a missing one gets: `not_found`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio

from master.conversations import PAGE_LIMIT_MAX, Conversations, is_conversation_id, new_conversation_id, title_of
from master.dispatcher import Task
from master.intake import Refused
from master.task_journal import TaskJournal

if TYPE_CHECKING:
    from master.chat_events import ChatEvents

logger = logging.getLogger(__name__)
EVENTS = ("ai-conversations", "ai-conversation", "ai-conversation-delete", "ai-delete-my-data")
DEFAULT_PAGE = 20
BAD_ID = ("conversation_id must be the id of one of your conversations (32 hexadecimal characters, as ai-query "
          "or ai-conversations gave it).")
NOT_FOUND = "No such conversation: it was deleted, or the id is wrong. Leave conversation_id out to start a new one."


@dataclass(frozen=True)
class Chosen:
    """The conversation a question goes to; `new` ones are written with their first task."""

    conversation_id: str
    new: bool


class ConversationEvents:
    def __init__(self, sio: socketio.AsyncServer, chat: ChatEvents, conversations: Conversations,
                 journal: TaskJournal) -> None:
        self.chat = chat
        self.conversations = conversations
        self.journal = journal
        sio.on("ai-conversations", self.on_list)
        sio.on("ai-conversation", self.on_load)
        sio.on("ai-conversation-delete", self.on_delete)
        sio.on("ai-delete-my-data", self.on_delete_all)
        chat.conversations = self  # ai-query asks `choose` and `accepted`

    # -- for ai-query -----------------------------------------------------------------------------
    async def choose(self, user_id: int, data: Any) -> Chosen:
        """The conversation named in the question (checked: the user's own), or a new one; raises Refused."""
        given = data.get("conversation_id") if isinstance(data, dict) else None
        if given is None:
            return Chosen(new_conversation_id(), True)
        if not is_conversation_id(given):
            raise Refused("bad_request", BAD_ID)
        if not await self.conversations.is_owner(user_id, given):
            raise Refused("not_found", NOT_FOUND)
        return Chosen(given, False)

    def accepted(self, chosen: Chosen, task: Task) -> None:
        """The question was queued: a new conversation is written with it (the same flush, before it)."""
        if chosen.new:
            self.journal.conversation_started(chosen.conversation_id, task.user_id, title_of(task.prompt), task.created)

    # -- the events ---------------------------------------------------------------------------------
    async def on_list(self, sid: str, *args: Any) -> dict[str, Any]:
        user_id, data = self._caller(sid, args, "ai-conversations", '{"limit": 1..100, "before": <updated_at>}',
                                     optional=True)
        if user_id is None:
            return data
        limit, before = data.get("limit", DEFAULT_PAGE), data.get("before")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT_MAX:
            return self._bad(sid, f"limit must be a whole number from 1 to {PAGE_LIMIT_MAX}.")
        if before is not None and (isinstance(before, bool) or not isinstance(before, (int, float))
                                   or not math.isfinite(before)):
            return self._bad(sid, "before must be a number (the next_before of the previous page) or left out.")
        rows = await self.conversations.listed(user_id, None if before is None else float(before), limit)
        return {"conversations": rows, "next_before": rows[-1]["updated_at"] if len(rows) == limit else None}

    async def on_load(self, sid: str, *args: Any) -> dict[str, Any]:
        user_id, conversation_id = await self._conversation_arg(sid, args, "ai-conversation")
        if user_id is None:
            return conversation_id
        found = await self.conversations.messages(user_id, conversation_id)
        return found if found is not None else _error("not_found", NOT_FOUND)

    async def on_delete(self, sid: str, *args: Any) -> dict[str, Any]:
        user_id, conversation_id = await self._conversation_arg(sid, args, "ai-conversation-delete")
        if user_id is None:
            return conversation_id
        if not await self.conversations.delete(user_id, conversation_id):
            return _error("not_found", NOT_FOUND)
        return {"deleted": conversation_id}

    async def on_delete_all(self, sid: str, *args: Any) -> dict[str, Any]:
        user_id, data = self._caller(sid, args, "ai-delete-my-data", '{"confirm": true}')
        if user_id is None:
            return data
        if data.get("confirm") is not True:
            return self._bad(sid, 'Send {"confirm": true} to delete all your conversations and tasks.')
        conversations, tasks = await self.conversations.delete_all(user_id)
        return {"deleted": {"conversations": conversations, "tasks": tasks}}

    # -- checks at the edge --------------------------------------------------------------------------
    def _caller(self, sid: str, args: tuple[Any, ...], event: str, shape: str,
                optional: bool = False) -> tuple[int | None, Any]:
        """(user id, the one dict argument), or (None, an error acknowledgement)."""
        connection = self.chat.connections.get(sid)
        if connection is None:
            return None, _error("not_logged_in", "Log in again.")
        if optional and not args:
            return connection.session.user.id, {}
        if len(args) != 1 or not isinstance(args[0], dict):
            self.chat.bad_input.report(sid, f"{event} with bad arguments")
            return None, _error("bad_request", f"Send {event} one argument: {shape}.")
        return connection.session.user.id, args[0]

    async def _conversation_arg(self, sid: str, args: tuple[Any, ...], event: str) -> tuple[int | None, Any]:
        user_id, data = self._caller(sid, args, event, '{"conversation_id": "<id>"}')
        if user_id is None:
            return None, data
        conversation_id = data.get("conversation_id")
        if not is_conversation_id(conversation_id):
            return None, self._bad(sid, BAD_ID)
        return user_id, conversation_id

    def _bad(self, sid: str, message: str) -> dict[str, Any]:
        self.chat.bad_input.report(sid, "a conversation event with a bad argument")
        return _error("bad_request", message)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
