"""A real HTTP server that records the callbacks offload's workers deliver to it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POST as (headers, body); answers 503 to the first ``fail_first`` ones."""

    def __init__(self, fail_first: int = 0, path: str = "/hooks/offload") -> None:
        self.deliveries: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    refuse = receiver.fail_first > 0
                    if refuse:
                        receiver.fail_first -= 1
                    else:
                        receiver.deliveries.append((dict(self.headers), body))
                self.send_response(503 if refuse else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, name: str) -> list[dict]:
        """The bodies of the deliveries whose ``Offload-Event`` is ``name``."""
        with self.lock:
            return [json.loads(body) for headers, body in self.deliveries if headers["Offload-Event"] == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
