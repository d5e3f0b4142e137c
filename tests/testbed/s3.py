"""An S3-protocol server on loopback (moto's server mode)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

# moto accepts any credentials; these fixed ones keep boto3 from looking at the host's.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testbed",
    "AWS_SECRET_ACCESS_KEY": "testbed-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    server: ThreadedMotoServer
    endpoint: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def stop(self) -> None:
        self.server.stop()

    def go_down(self) -> None:
        """Refuse connections as a crashed server does: moto's stop() leaves the listening socket open (clients
        would hang rather than be refused), so it is closed too."""
        self.stop()
        self.server._server.server_close()

    def come_back(self) -> None:
        """A new server on the same host and port; moto keeps the objects in this process, so they survive."""
        host, port = self.endpoint.removeprefix("http://").rsplit(":", 1)
        self.server = ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)
        self.server.start()


def start_s3() -> S3Server:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(server, f"http://{host}:{port}")
