"""A real Milvus 2.3.5 standalone server for the tests (PyPI's ``milvus``, "Embedded Milvus").

Run with the Python of ``.milvus-venv`` (made by ``make install-server``), not the project's:
``python tests/milvus_server.py BASE_DIR STATE_FILE OWNER_PID``. It starts the server with its data
under BASE_DIR, writes ``{"port": ..., "pid": ...}`` to STATE_FILE once the server is healthy, and
stops the server when OWNER_PID (the pytest process, or xdist's controller) is gone, or on SIGTERM,
removing the folder of STATE_FILE (which holds BASE_DIR).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(base: str, state_file: str, owner: int) -> None:
    from milvus import default_server  # only in .milvus-venv

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    default_server.set_base_dir(base)
    # The embedded etcd listens on 2379 and 2380 unless told otherwise, which a second server on the
    # machine (another session, a developer's own) would already hold: give it free ports.
    peer, client = free_port(), free_port()
    etcd = Path(base) / "embedEtcd.yaml"
    etcd.write_text(f"listen-peer-urls: http://127.0.0.1:{peer}\n"
                    f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
                    f"initial-cluster: default=http://127.0.0.1:{peer}\n"
                    f"listen-client-urls: http://127.0.0.1:{client}\n"
                    f"advertise-client-urls: http://127.0.0.1:{client}\n")
    config = default_server.config
    config.template_text = config.template_text.replace(
        "  use:\n    embed: true", f"  config:\n    path: {etcd}\n  use:\n    embed: true", 1)
    try:
        default_server.start()  # returns once /healthz answers OK
    except BaseException:
        default_server.stop()
        shutil.rmtree(base, ignore_errors=True)  # keep the log beside it
        raise
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
        shutil.rmtree(Path(state_file).parent, ignore_errors=True)  # the data (about 450 MB), state, log


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
