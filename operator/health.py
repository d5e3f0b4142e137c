"""`/healthz` and `/readyz` of the operator, served from its start, before leader election.

A standby that waits for the lease is alive (`/healthz` 200, so the liveness probe leaves it be) and not ready
(`/readyz` 503 until it leads), so a Service or a rollout tells the leader from the standbys.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health:
    def __init__(self) -> None:
        self.leading = threading.Event()

    def serve(self, bind: str, port: int) -> ThreadingHTTPServer:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = {"/healthz": True, "/readyz": health.leading.is_set()}.get(self.path)
                if ok is None:
                    self.send_error(404)
                    return
                body = b"ok\n" if ok else b"standby: not leading\n"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer((bind, port), Handler)
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server
