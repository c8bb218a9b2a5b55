"""Run an agent, end whatever it leaves behind, and record its exit status in a file that outlives the daemon.

    python3 -I process_wrapper.py RUN_DIR -- ARGV...

Standard library only and free of kanmon imports: the process runtime runs this file by path with ``-I``, so it
works from any checkout or wheel and ignores PYTHON* variables. The agent gets its own process group (the runtime
signals that group, so the agent and its children stop together while this wrapper lives on to write ``exit``);
SIGTERM, SIGINT and SIGHUP sent to the wrapper are forwarded to it.

On Linux the wrapper is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``): the kernel hands it every orphaned
descendant, even one that left the agent's process group and session with ``setsid`` and a double fork. Once the
agent has exited, the wrapper sends SIGTERM to every descendant still running, SIGKILL to those left after
:data:`DESCENDANT_GRACE` seconds (at once if it is itself signalled meanwhile), and reaps them, until it has no
child left; only then does it write ``exit``. So when a run has ended, nothing it started runs any more. The agent
also gets SIGKILL from the kernel when the wrapper dies (``prctl(PR_SET_PDEATHSIG)``): a wrapper SIGKILLed by the
OOM killer, by hand, or by the runtime before it wrote ``child.json`` takes its agent with it, instead of leaving it
to run on under init with nobody to stop it or record its exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

CHILD_FILE = "child.json"
EXIT_FILE = "exit"
DESCENDANT_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for what the agent left behind
GIVE_UP = 10.0  # seconds of SIGKILLs after which a descendant that will not die (stuck in the kernel) is left
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PR_SET_CHILD_SUBREAPER = 36
_TICK = 0.02


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either nothing or all of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses; the fields after the last ')' are plain
    return stat.rpartition(")")[2].split()


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None when it does not exist): guards against pid reuse."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``prctl``); False where the kernel cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), 0)
    except (OSError, AttributeError):
        return False
    return bool(done == 0)


def dying_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` after which the child gets SIGKILL when this process dies (Linux); None elsewhere.

    Runs in the forked child before ``exec`` (this wrapper has no other thread, so that is safe). A wrapper that died
    between the fork and the ``prctl`` has no death left to signal: the child then exits at once itself."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0), 0)
        if os.getppid() != parent:
            os._exit(127)

    return die_with_parent


def descendants(root: int) -> dict[int, int]:
    """Every live (not zombie) descendant of ``root``: pid → start ticks, read from ``/proc``."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
            if fields is None:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            if fields[0] != "Z":
                starts[int(entry.name)] = int(fields[19])
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            if pid in starts:
                found[pid] = starts[pid]
    return found


def _send(pid: int, start: int, signum: int) -> None:
    """Signal ``pid`` if it is still the process that started at ``start`` (through a pidfd where there is one)."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        pidfd = None
    try:
        if process_start_ticks(pid) != start:
            return  # it ended, and the pid may already be someone else's
        if pidfd is None:
            os.kill(pid, signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _reap() -> bool:
    """Reap every child that has exited; True while some child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def end_descendants(hurry: list[int], grace: float = DESCENDANT_GRACE) -> None:
    """SIGTERM every descendant, SIGKILL what is left after ``grace`` seconds (or once ``hurry`` holds a signal),
    and reap, until no child is left (or after :data:`GIVE_UP` seconds of SIGKILLs)."""
    me = os.getpid()
    deadline = time.monotonic() + grace
    termed: set[tuple[int, int]] = set()
    while _reap():
        now = time.monotonic()
        if now >= deadline + GIVE_UP:
            sys.stderr.write(f"kanmon: processes left by the agent will not die: {sorted(descendants(me))}\n")
            return
        late = bool(hurry) or now >= deadline
        for pid, start in descendants(me).items():
            if late:
                _send(pid, start, signal.SIGKILL)
            elif (pid, start) not in termed:
                termed.add((pid, start))
                _send(pid, start, signal.SIGTERM)
        time.sleep(_TICK)


def _wait_for(agent: int) -> int:
    """Reap children (the agent's orphans come here too) until the agent has exited; its exit status."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == agent:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code  # killed by signal N: the shell convention 128 + N


def main(argv: list[str]) -> int:
    """Start the agent, forward stop signals to it, end what it leaves behind, write its status to RUN_DIR/exit."""
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: process_wrapper.py RUN_DIR -- ARGV...\n")
        return 2
    run_dir, command = Path(argv[0]), argv[2:]
    agent: list[int] = []  # the agent's pid while it runs
    pending: list[int] = []  # signals that came before the agent started, or after it ended

    def forward(signum: int, frame: FrameType | None) -> None:
        if not agent:
            pending.append(signum)  # before the agent: delivered once it runs; after it: end the leftovers now
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent[0], signum)

    # installed before the agent starts so that an early stop cannot kill the wrapper and lose the exit status;
    # Python-level handlers are reset to the default in the agent when it execs
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    become_subreaper()
    try:
        child = subprocess.Popen(command, process_group=0, preexec_fn=dying_with_this_process())
    except OSError as exc:
        sys.stderr.write(f"kanmon: cannot start {command[0]!r}: {exc}\n")
        write_atomically(run_dir / EXIT_FILE, "127\n")
        return 127
    agent.append(child.pid)
    for early in pending:
        forward(early, None)
    pending.clear()
    write_atomically(run_dir / CHILD_FILE, json.dumps({"pid": child.pid, "start": process_start_ticks(child.pid)}))
    status = _wait_for(child.pid)
    child.returncode = status  # reaped here, not by Popen
    agent.clear()
    end_descendants(pending)
    write_atomically(run_dir / EXIT_FILE, f"{status}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
