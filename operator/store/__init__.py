"""Artifact stores: one small interface, a file:// and an s3:// implementation."""

from mixtura_operator.store.base import ArtifactNotFound, ArtifactStore, open_store

__all__ = ["ArtifactNotFound", "ArtifactStore", "open_store"]
