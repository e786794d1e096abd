"""The processes a test started, found through Linux ``/proc``: a process's session, its start
time (which tells it from a later process that got its PID), every descendant of a set of
processes in any session, and SIGKILL for exactly the processes recorded."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["descendants", "kill_recorded", "session_of", "start_time"]


def _stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, ...), None for a gone or zombie process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): tells a process from a later one with its PID."""
    fields = _stat(pid)
    return fields[19] if fields else None


def session_of(pid: int) -> int | None:
    """The session id of ``pid``; None when it is gone."""
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def descendants(roots: Sequence[int]) -> dict[int, str]:
    """Every running descendant of ``roots``, in any session: pid -> start time."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents[int(entry)] = (int(fields[1]), fields[19])
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in parents.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, str] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found[child] = parents[child][1]
                todo.append(child)
    return found


def kill_recorded(processes: Mapping[int, str | None]) -> None:
    """SIGKILL each pid still running with its recorded start time (not a later process with its PID)."""
    for pid, started in processes.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
