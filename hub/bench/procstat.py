"""What /proc says about the processes under test: CPU seconds, resident memory, the machine's busy time."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as file:
        # fields[0] is field 3 (state): the command name before it may hold spaces and parentheses
        return file.read().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), in bytes; 0 for a process without memory (a zombie)."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it (``hub serve --workers`` forks its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine spent, from /proc/stat (every field but idle and iowait)."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True)
class Sample:
    """CPU seconds and RSS summed over a set of processes at one moment."""

    cpu_s: float
    rss_bytes: int


class ProcessGroup:
    """The server's processes: the given PIDs and their children, found once when the group is made."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = list(roots)
        self.pids = sorted({pid for root in roots for pid in descendants(root)})

    def sample(self) -> Sample:
        cpu, rss = 0.0, 0
        for pid in self.pids:
            with contextlib.suppress(OSError):  # a worker that exited counts as nothing from now on
                cpu += cpu_seconds(pid)
                rss += rss_bytes(pid)
        return Sample(cpu, rss)
