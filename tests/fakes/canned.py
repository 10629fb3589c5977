"""A server on a real socket that answers every request with the response a test sets: the errors
stores send (S3's XML, GCS's JSON, an OAuth token endpoint's refusal) without a store to provoke them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.base import STOP_POLL_S


@dataclass
class Canned:
    status: int
    body: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CannedServer:
    reply: Canned = field(default_factory=lambda: Canned(200, "{}"))
    by_path: dict[str, Canned] = field(default_factory=dict)  # path prefix -> reply, before ``reply``
    paths: list[str] = field(default_factory=list)

    def answer(self, path: str) -> Canned:
        return next((r for prefix, r in self.by_path.items() if path.startswith(prefix)), self.reply)

    def start(self) -> CannedServer:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                canned.paths.append(self.path)
                reply = canned.answer(self.path)
                body = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(STOP_POLL_S,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
