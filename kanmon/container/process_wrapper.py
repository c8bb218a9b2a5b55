"""Run an agent and record its exit status in a file, so the status outlives the daemon that started it.

    python3 -I process_wrapper.py RUN_DIR -- ARGV...

Standard library only and free of kanmon imports: the process runtime runs this file by path with ``-I``, so it
works from any checkout or wheel and ignores PYTHON* variables. The agent gets its own process group (the runtime
signals that group, so the agent and its children stop together while this wrapper lives on to write ``exit``);
SIGTERM, SIGINT and SIGHUP sent to the wrapper are forwarded to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

CHILD_FILE = "child.json"
EXIT_FILE = "exit"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either nothing or all of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None when it does not exist): guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses; the fields after the last ')' are plain
    return int(stat.rpartition(")")[2].split()[19])


def main(argv: list[str]) -> int:
    """Start the agent, forward stop signals to it, and write its exit status to RUN_DIR/exit."""
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: process_wrapper.py RUN_DIR -- ARGV...\n")
        return 2
    run_dir, command = Path(argv[0]), argv[2:]
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)  # arrived before the agent started: deliver it as soon as it has
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    # installed before the agent starts so that an early stop cannot kill the wrapper and lose the exit status;
    # Python-level handlers are reset to the default in the agent when it execs
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        child = subprocess.Popen(command, process_group=0)
    except OSError as exc:
        sys.stderr.write(f"kanmon: cannot start {command[0]!r}: {exc}\n")
        write_atomically(run_dir / EXIT_FILE, "127\n")
        return 127
    for early in pending:
        forward(early, None)
    write_atomically(run_dir / CHILD_FILE, json.dumps({"pid": child.pid, "start": process_start_ticks(child.pid)}))
    code = child.wait()
    status = 128 - code if code < 0 else code  # killed by signal N: the shell convention 128 + N
    write_atomically(run_dir / EXIT_FILE, f"{status}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
