"""s3:// store on boto3; works with AWS and any S3-protocol server (endpoint URL)."""

from __future__ import annotations

from typing import BinaryIO

import boto3
from botocore.exceptions import ClientError

from mixtura_operator.store.base import ArtifactNotFound, ArtifactStore


class S3Store(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client=None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _get(self, key: str, **extra: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)["Body"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise ArtifactNotFound(key) from error
            raise

    def get_bytes(self, key: str) -> bytes:
        return self._get(key).read()

    def open_read(self, key: str) -> BinaryIO:
        return self._get(key)

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        return self._get(key, Range=f"bytes={start}-{stop - 1}").read()

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) if prefix else root
        ):
            keys.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
        return sorted(k for k in keys if k == prefix or not prefix or k.startswith(prefix.rstrip("/") + "/"))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, self._key(prefix.strip("/")), self.endpoint_url, self.client)
