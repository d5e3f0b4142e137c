"""`mixtura operator`: leader election, metrics server, then kopf with the handlers."""

from __future__ import annotations

import logging
import os
import socket

import kopf
from kubernetes import client, config
from prometheus_client import start_http_server

from mixtura_operator import handlers
from mixtura_operator.controller import SearchController
from mixtura_operator.health import Health
from mixtura_operator.leader import LeaderElector

LEASE = "mixtura-operator"


def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # A connection per handler thread: with the default pool (5 per CPU) the threads beyond it open and close a
    # TLS connection per request.
    configuration.connection_pool_maxsize = handlers.WORKERS
    return client.ApiClient(configuration)


def run(namespaces: list[str], all_namespaces: bool, metrics_port: int, health_port: int, bind: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = api_client()
    lease_namespace = os.environ.get("POD_NAMESPACE") or (namespaces[0] if namespaces else "default")
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    start_http_server(metrics_port, addr=bind)
    health = Health()
    health.serve(bind, health_port)
    LeaderElector(api, lease_namespace, LEASE, identity).acquire()
    health.leading.set()
    handlers.controller = SearchController(api)
    kopf.run(clusterwide=all_namespaces, namespaces=[] if all_namespaces else namespaces, standalone=True)
