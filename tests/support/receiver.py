"""A real HTTP server on loopback that records the JSON bodies POSTed to it (push callbacks)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.processes import free_port


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    #: answer 500 to this many requests before accepting
    fail_next: int = 0
    #: while set, requests are held unanswered (a sender stays mid-push); cleared, they are answered
    hold: threading.Event = field(default_factory=threading.Event)
    #: bodies received on a connection whose sender was gone before the answer (never answered)
    orphaned: list[dict[str, Any]] = field(default_factory=list)
    #: requests being held now
    held: int = 0

    def of(self, notify_type: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("notifyType") == notify_type]


@contextmanager
def receiver(port: int | None = None) -> Iterator[Receiver]:
    port = port or free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/callback")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if rec.hold.is_set():
                with lock:
                    rec.held += 1
                while rec.hold.is_set():
                    time.sleep(0.01)
                with lock:
                    rec.held -= 1
                if self._sender_gone():
                    with lock:
                        rec.orphaned.append(json.loads(body))
                    self.close_connection = True
                    return
            with lock:
                failing = rec.fail_next > 0
                if failing:
                    rec.fail_next -= 1
                else:
                    rec.bodies.append(json.loads(body))
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _sender_gone(self) -> bool:
            """The client closed its end (a killed process's sockets are closed by its kernel)."""
            try:
                return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
