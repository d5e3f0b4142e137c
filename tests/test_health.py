"""The operator's health endpoints: a standby is alive and not ready; the leader is both."""

from __future__ import annotations

from mixtura_operator.health import Health
from testbed.procs import free_port
from testbed.procs import http_status as status


def test_standby_is_alive_and_not_ready_until_it_leads():
    health, port = Health(), free_port()
    server = health.serve("127.0.0.1", port)
    try:
        assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 503)
        health.leading.set()
        assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 200)
        assert status(port, "/other") == 404
    finally:
        server.shutdown()
        server.server_close()
