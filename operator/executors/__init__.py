"""Executors carry out `CreateJob` actions: as local subprocesses or as Kubernetes batch/v1 Jobs."""
