"""Run the orchestrator's command line (``python -m tests.interrupt_lite ARGS...``) and press Ctrl-C while
Python shuts down, once the command has ended: where a user's second Ctrl-C lands while Milvus Lite
stops its server and flushes its database at exit (milvus_lite's own ``atexit`` callback)."""

from __future__ import annotations

import atexit
import os
import signal

import milvus_lite  # noqa: F401 - registers its atexit callback first, so that ours runs before it

from orchestrator.cli import main


def _ctrl_c_at_exit() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(100_000):  # Python runs a signal's handler between bytecodes: give it some
        pass


if __name__ == "__main__":
    atexit.register(_ctrl_c_at_exit)
    main()
