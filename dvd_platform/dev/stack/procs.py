"""Small process and port helpers shared by the stack's services."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A service of the stack could not be found, started, reached or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): reap it if it is our child, else read its state.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    return _running(pid)


def _running(pid: int | str) -> bool:
    """True while any thread of the process runs.

    A zombie main thread is not enough to call a process gone: a JVM's main thread
    exits first while its shutdown hooks (and its listening sockets) live on.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return False
    except OSError:
        return True
    for task in tasks:
        try:
            if (task / "stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X"):
                return True
        except (OSError, IndexError):
            continue
    return False


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: a stopped stack leaves no process behind."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """True while a process of the process group ``pgid`` runs (a zombie runs no more)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and (fields[0] != "Z" or _running(entry.name)):
                return True
    return False


#: Ask, then insist: SIGTERM and time to finish, then SIGKILL.
TERM_THEN_KILL: tuple[tuple[signal.Signals | None, float], ...] = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))


def end_group(pgid: int, schedule: Sequence[tuple[signal.Signals | None, float]] = TERM_THEN_KILL) -> None:
    """End every process of a group: each (signal, grace) of ``schedule`` in turn until none is left.

    A whole group, not one pid: a server's helpers (Spark's Python workers, a code
    server) would otherwise outlive it. ``None`` as signal only waits.
    """
    for sig, grace in schedule:
        if sig is not None:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.1)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (one pass over /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found
