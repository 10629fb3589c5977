"""A real Milvus 2.3.5 standalone server for the tests (PyPI's ``milvus``, "Embedded Milvus").

Run with the Python of ``.milvus-venv`` (made by ``make install-server``), not the project's:
``python tests/milvus_server.py BASE_DIR STATE_FILE OWNER_PID``. It starts the server with its data
under BASE_DIR, writes ``{"port": ..., "pid": ...}`` to STATE_FILE once the server is healthy, and
stops the server (and removes BASE_DIR) when OWNER_PID (the pytest process, or xdist's controller) is gone, or on SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(base: str, state_file: str, owner: int) -> None:
    from milvus import default_server  # only in .milvus-venv

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    default_server.set_base_dir(base)
    default_server.start()  # returns once /healthz answers OK
    try:
        state = Path(state_file)
        state.with_suffix(".tmp").write_text(json.dumps({"port": default_server.listen_port,
                                                         "pid": os.getpid()}))
        state.with_suffix(".tmp").replace(state)
        while not stop.wait(0.5):
            if not alive(owner):
                break
    finally:
        default_server.stop()
        shutil.rmtree(base, ignore_errors=True)  # about 450 MB: the server's binaries and data


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
