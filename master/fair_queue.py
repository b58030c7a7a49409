"""The task queue's order: highest priority first; within a priority, round-robin across owners; FIFO per owner.

A user with 500 queued questions delays another user's one question by at most one turn per
user ahead of it, not by 500 places. Push is O(1) (O(log n) with aging). An owner whose first task
cannot be placed (no free worker serves its model) is parked, out of the rotation, under its group
(the dispatcher's: the model), and comes back first in the rotation, one owner per take, once a task
of that group can be placed: taking is O(levels + groups parked), not O(owners waiting), so 10,000
owners waiting for a busy model cost a submit no more than 10 do.

Aging (`aging_s` > 0): a level's effective priority is its own plus one for every `aging_s` its oldest
task has waited, up to the highest level queued; levels are tried by effective priority, ties going to
the level with the older task. So under constant `high` load a `low` task waits about 2 x `aging_s`
(plus the `high` tasks queued before it), not forever. Each level keeps a heap of its tasks by queue
time; stale entries (taken or cancelled tasks) are dropped lazily when they reach the top.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

LOW, NORMAL, HIGH = 0, 1, 2
PRIORITY_LEVELS = {"low": LOW, "normal": NORMAL, "high": HIGH}


class FairQueue:
    def __init__(self, group_of: Callable[[str], Hashable] | None = None, aging_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # priority -> owner -> that owner's task ids in order; an OrderedDict's order is the rotation.
        self._levels: dict[int, OrderedDict[str, deque[str]]] = {}
        # Where each live (queued) task id is; ids removed by `discard` stay in their deque until reached.
        self._where: dict[str, tuple[int, str]] = {}
        # What decides whether a task can be placed (tasks of one group are placeable or not together); by default
        # each task is its own group.
        self._group_of: Callable[[str], Hashable] = group_of or (lambda task_id: task_id)
        # (priority, group) -> owner -> line: owners whose first task could not be placed, in the order parked.
        self._parked: dict[tuple[int, Hashable], OrderedDict[str, deque[str]]] = {}
        self._parked_as: dict[tuple[int, str], tuple[int, Hashable]] = {}  # (priority, owner) -> its parking key
        # With aging: priority -> heap of (queued since, tie-breaker, task id) of the tasks in the rotation; a parked
        # owner's entries are moved aside when they reach the top (a parked task does not age its level) and
        # pushed back when the owner is unparked.
        self._since: dict[int, list[tuple[float, int, str]]] = {}
        self._parked_since: dict[tuple[int, str], list[tuple[float, int, str]]] = {}
        self._seq = itertools.count()
        self.aging_s = aging_s
        self.clock = clock

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._where

    def push(self, task_id: str, owner: str, priority: int = NORMAL, *, first: bool = False,
             since: float | None = None) -> None:
        """Queue a task at the end of its owner's line (`first`: at the front, for a task that goes back).
        `since` (the clock's time it was first queued) keeps a returning task's age; default: now."""
        self._where[task_id] = (priority, owner)
        if self.aging_s > 0:
            stamp = self.clock() if since is None else since
            heapq.heappush(self._since.setdefault(priority, []), (stamp, next(self._seq), task_id))
        key = self._parked_as.get((priority, owner))
        if key is not None:
            line = self._parked[key][owner]
            if first:
                line.appendleft(task_id)
                self._unpark(priority, owner)  # its first task changed: look at it again
            else:
                line.append(task_id)
            return
        level = self._levels.setdefault(priority, OrderedDict())
        line = level.get(owner)
        if line is None:
            line = level[owner] = deque()  # a new owner joins at the end of the rotation
        if first:
            line.appendleft(task_id)
        else:
            line.append(task_id)

    def discard(self, task_id: str) -> bool:
        """Take a queued task out (cancelled); True if it was queued."""
        where = self._where.pop(task_id, None)
        if where is None:
            return False
        key = self._parked_as.get(where)
        if key is not None and self._parked[key][where[1]][0] == task_id:
            self._unpark(*where)  # its owner's first task left: look at the next one
        return True

    def _park(self, priority: int, owner: str, line: deque[str]) -> None:
        del self._levels[priority][owner]
        key = (priority, self._group_of(line[0]))
        self._parked.setdefault(key, OrderedDict())[owner] = line
        self._parked_as[(priority, owner)] = key

    def _unpark(self, priority: int, owner: str) -> None:
        """Back into the rotation, first (it has waited)."""
        key = self._parked_as.pop((priority, owner))
        group = self._parked[key]
        line = group.pop(owner)
        if not group:
            del self._parked[key]
        level = self._levels.setdefault(priority, OrderedDict())
        level[owner] = line
        level.move_to_end(owner, last=False)
        aside = self._parked_since.pop((priority, owner), None)
        if aside:
            heap = self._since.setdefault(priority, [])
            for entry in aside:
                heapq.heappush(heap, entry)

    def _unpark_placeable(self, can_place: Callable[[str], bool]) -> None:
        """For each parked group whose tasks can be placed now, its first owner goes back into the rotation."""
        for key, group in list(self._parked.items()):
            owner, line = next(iter(group.items()))
            if can_place(line[0]):
                self._unpark(key[0], owner)

    def _oldest(self, priority: int) -> float | None:
        """When the oldest task in the rotation at `priority` was queued (stale entries dropped, parked ones set aside)."""
        heap = self._since.get(priority)
        while heap:
            stamp, _, task_id = heap[0]
            where = self._where.get(task_id)
            if where is not None and where[0] == priority:
                if where not in self._parked_as:
                    return stamp
                self._parked_since.setdefault(where, []).append(heapq.heappop(heap))  # back when unparked
                continue
            heapq.heappop(heap)
        return None

    def _order(self) -> list[int]:
        """The levels in the order to try them: by priority, or with aging by effective priority, then age."""
        if self.aging_s <= 0:
            return sorted(self._levels, reverse=True)
        now, top = self.clock(), max(self._levels)
        keys: dict[int, tuple[int, float]] = {}
        for priority in self._levels:
            oldest = self._oldest(priority)
            if oldest is None:
                keys[priority] = (priority, float("inf"))
            else:
                risen = int(max(0.0, now - oldest) // self.aging_s)
                keys[priority] = (min(top, priority + risen), oldest)
        return sorted(self._levels, key=lambda p: (-keys[p][0], keys[p][1], -p))

    def take(self, can_place: Callable[[str], bool]) -> str | None:
        """The next task that `can_place` accepts, or None; its owner moves to the end of the rotation."""
        self._unpark_placeable(can_place)
        if not self._levels:
            return None
        for priority in self._order():
            level = self._levels[priority]
            for owner in list(level):
                line = level[owner]
                while line and self._where.get(line[0]) != (priority, owner):
                    line.popleft()  # discarded, or queued again elsewhere
                if not line:
                    del level[owner]
                    continue
                if not can_place(line[0]):
                    self._park(priority, owner, line)  # this owner's first task must wait; FIFO within an owner
                    continue
                task_id = line.popleft()
                del self._where[task_id]
                if line:
                    level.move_to_end(owner)
                else:
                    del level[owner]
                if not level:
                    self._drop_level(priority)
                return task_id
            if not level:
                self._drop_level(priority)
        return None

    def _drop_level(self, priority: int) -> None:
        """No owner left in the rotation at `priority`: forget the level, and its heap unless owners are parked
        there (their tasks keep their age)."""
        self._levels.pop(priority, None)
        if not any(key[0] == priority for key in self._parked):
            self._since.pop(priority, None)  # no parked owner there either: every entry left is stale
