"""The response cache: an identical question (same model, same prompt after normalising) answered again
from memory, at once and without a worker.

Off unless RESPONSE_CACHE_TTL_S > 0. Entries live `ttl_s` and at most `max_entries` are kept (least
recently used goes first). Keys include the asker's user id unless `shared`: by default one user's
answers never reach another. Only answers are kept, never errors (a refused key, a timeout or a
Stop are not answers to repeat). It is a Journal: the dispatcher tells it every finished task.
"""

from __future__ import annotations

import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from master.dispatcher import Outcome, Task
from master.metrics import CACHE_LOOKUPS


def normalise(prompt: str) -> str:
    """The prompt as the cache compares it: Unicode NFC, runs of whitespace as one space, no outer space.
    Case and punctuation are kept: they can change what a question means."""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


@dataclass(frozen=True)
class CachedAnswer:
    answer: str
    model: str  # the model that wrote it, as its worker reported it
    expires: float
    owner: int = 0  # the user whose question it answered (their data: gone when they delete it)


Key = tuple[int, str, str]  # (user id, or 0 when shared; requested model; normalised prompt)


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int = 1000, shared: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.shared = shared
        self.clock = clock
        self._entries: OrderedDict[Key, CachedAnswer] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _key(self, user_id: int, model: str, prompt: str) -> Key:
        return (0 if self.shared else user_id, model, normalise(prompt))

    def get(self, user_id: int, model: str, prompt: str) -> CachedAnswer | None:
        """The live answer to this question, if any (counted as a hit or a miss); None when off."""
        if not self.enabled:
            return None
        key = self._key(user_id, model, prompt)
        found = self._entries.get(key)
        if found is not None and found.expires <= self.clock():
            del self._entries[key]
            found = None
        if found is None:
            CACHE_LOOKUPS.labels("miss").inc()
            return None
        self._entries.move_to_end(key)
        CACHE_LOOKUPS.labels("hit").inc()
        return found

    def put(self, user_id: int, model: str, prompt: str, answer: str, answer_model: str) -> None:
        if not self.enabled:
            return
        key = self._key(user_id, model, prompt)
        self._entries[key] = CachedAnswer(answer, answer_model, self.clock() + self.ttl_s, user_id)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_user(self, user_id: int) -> int:
        """Drop every answer to one of the user's questions (they deleted a conversation or all their data:
        a deleted answer must not come back from the cache, to them or, when shared, to anyone)."""
        gone = [key for key, entry in self._entries.items() if entry.owner == user_id]
        for key in gone:
            del self._entries[key]
        return len(gone)

    # -- a Journal: only finished answers matter ---------------------------------------------------
    def accepted(self, task: Task) -> None: ...
    def assigned(self, task: Task) -> None: ...
    def requeued(self, task: Task) -> None: ...
    def dropped(self, task: Task) -> None: ...

    def finished(self, task: Task, outcome: Outcome) -> None:
        if outcome.answer is not None and outcome.error_code is None and not outcome.cached:
            self.put(task.user_id, task.model, task.prompt, outcome.answer, outcome.model)
