"""Run the orchestrator's command line (``python -m tests.interrupt_lite ARGS...``) and press Ctrl-C while
Python shuts down, once the command has ended: where a user's second Ctrl-C lands while Milvus Lite
stops its server and flushes its database at exit (milvus_lite's own ``atexit`` callback).

The Ctrl-C is pressed from inside that callback, as it starts: milvus_lite registers it when the first
database is opened, after any callback of ours, so an ``atexit`` callback here would run after Lite's
shutdown, not during it."""

from __future__ import annotations

import os
import signal

from milvus_lite.server_manager import ServerManager

from orchestrator.cli.main import main

_release_server = ServerManager.release_server


def _ctrl_c_then_release(self: ServerManager, path: str) -> None:
    """Lite's exit callback stops each database's server through this (looked up on each call)."""
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(100_000):  # a Python-level handler would run between these bytecodes
        pass
    _release_server(self, path)


if __name__ == "__main__":
    ServerManager.release_server = _ctrl_c_then_release  # type: ignore[method-assign]
    main()
