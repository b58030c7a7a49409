"""The task queue's order: highest priority first; within a priority, round-robin across owners; FIFO per owner.

A user with 500 queued questions delays another user's one question by at most one turn per
user ahead of it, not by 500 places. Push is O(1). An owner whose first task cannot be placed (no
free worker serves its model) is parked, out of the rotation, under its group (the dispatcher's:
the model), and comes back first in the rotation, one owner per take, once a task of that group
can be placed: taking is O(groups parked), not O(owners waiting), so 10,000 owners waiting for a
busy model cost a submit no more than 10 do.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable


class FairQueue:
    def __init__(self, group_of: Callable[[str], Hashable] | None = None) -> None:
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

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._where

    def push(self, task_id: str, owner: str, priority: int = 0, *, first: bool = False) -> None:
        """Queue a task at the end of its owner's line (`first`: at the front, for a task that goes back)."""
        self._where[task_id] = (priority, owner)
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

    def _unpark_placeable(self, can_place: Callable[[str], bool]) -> None:
        """For each parked group whose tasks can be placed now, its first owner goes back into the rotation."""
        for key, group in list(self._parked.items()):
            owner, line = next(iter(group.items()))
            if can_place(line[0]):
                self._unpark(key[0], owner)

    def take(self, can_place: Callable[[str], bool]) -> str | None:
        """The next task that `can_place` accepts, or None; its owner moves to the end of the rotation."""
        self._unpark_placeable(can_place)
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
                    self._park(priority, owner, line)  # this owner's first task must wait; FIFO within an owner
                    continue
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
