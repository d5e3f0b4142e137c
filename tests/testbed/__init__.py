"""The real test bed: a Kubernetes control plane with KWOK GPU nodes, an S3 server, Prometheus."""
