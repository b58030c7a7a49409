"""The task queue's order: highest priority first; within a priority, round-robin across owners; FIFO per owner.

A user with 500 queued questions delays another user's one question by at most one turn per
user ahead of it, not by 500 places. Push is O(1); taking the next task is O(1) unless owners'
first tasks cannot be placed (no free worker serves their model), which are passed over.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class FairQueue:
    def __init__(self) -> None:
        # priority -> owner -> that owner's task ids in order; an OrderedDict's order is the rotation.
        self._levels: dict[int, OrderedDict[str, deque[str]]] = {}
        # Where each live (queued) task id is; ids removed by `discard` stay in their deque until reached.
        self._where: dict[str, tuple[int, str]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._where

    def push(self, task_id: str, owner: str, priority: int = 0, *, first: bool = False) -> None:
        """Queue a task at the end of its owner's line (`first`: at the front, for a task that goes back)."""
        level = self._levels.setdefault(priority, OrderedDict())
        line = level.get(owner)
        if line is None:
            line = level[owner] = deque()  # a new owner joins at the end of the rotation
        if first:
            line.appendleft(task_id)
        else:
            line.append(task_id)
        self._where[task_id] = (priority, owner)

    def discard(self, task_id: str) -> bool:
        """Take a queued task out (cancelled); True if it was queued."""
        return self._where.pop(task_id, None) is not None

    def take(self, can_place: Callable[[str], bool]) -> str | None:
        """The next task that `can_place` accepts, or None; its owner moves to the end of the rotation."""
        for priority in sorted(self._levels, reverse=True):
            level = self._levels[priority]
            for owner in list(level):
                line = level[owner]
                while line and self._where.get(line[0]) != (priority, owner):
                    line.popleft()  # discarded, or queued again elsewhere
                if not line:
                    del level[owner]
                    continue
                if not can_place(line[0]):
                    continue  # this owner's first task must wait; FIFO within an owner
                task_id = line.popleft()
                del self._where[task_id]
                if line:
                    level.move_to_end(owner)
                else:
                    del level[owner]
                return task_id
            if not level:
                del self._levels[priority]
        return None
