"""s3:// store on boto3; works with AWS and any S3-protocol server (endpoint URL).

Calls retry with boto3's adaptive mode (backoff, and a client-side rate limit once the server throttles); large
objects move as multipart transfers; deletes go 1,000 keys a request.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from mixtura_operator.store.base import ArtifactNotFound, ArtifactStore

# Short connect timeouts: a store that is down degrades the search within seconds rather than a minute.
RETRIES = Config(retries={"total_max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)
TRANSFER = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20)
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
ABSENT = ("NoSuchKey", "404", "NotFound")


class S3Store(ArtifactStore):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client=None,
        transfer: TransferConfig | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        """`transfer`: when objects go multipart and in what parts (boto3's transfer manager; default TRANSFER)."""
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        keys = (
            {
                "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
            }
            if credentials
            else {}
        )
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, config=RETRIES, **keys)
        self.transfer = transfer or TRANSFER
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        if len(data) < self.transfer.multipart_threshold:
            # One PutObject, as the transfer manager would send, without starting its threads.
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
            return
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key), Config=self.transfer)

    def upload_file(self, path: Path, key: str) -> None:
        # Streamed from disk in parts (a checkpoint shard never sits in memory whole), multipart above the threshold.
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def download_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
        except ClientError as error:
            if error.response["Error"]["Code"] in ABSENT:
                raise ArtifactNotFound(key) from error
            raise

    def get_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        try:
            self.client.download_fileobj(self.bucket, self._key(key), buffer, Config=self.transfer)
        except ClientError as error:
            if error.response["Error"]["Code"] in ABSENT:
                raise ArtifactNotFound(key) from error
            raise
        return buffer.getvalue()

    def get_json(self, key: str) -> Any:
        # Markers, metrics and mixtures are small: one GET, where a transfer first asks for the size (HEAD).
        return json.loads(self._get(key).read())

    def _get(self, key: str, **extra: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)["Body"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ABSENT:
                raise ArtifactNotFound(key) from error
            raise

    def _listing_prefix(self, prefix: str) -> str:
        return self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")

    def open_read(self, key: str) -> BinaryIO:
        return self._get(key)

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        return self._get(key, Range=f"bytes={start}-{stop - 1}").read()

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._listing_prefix(prefix)
        ):
            keys.extend(obj["Key"][len(root) :] for obj in page.get("Contents", []))
        return sorted(k for k in keys if k == prefix or not prefix or k.startswith(prefix.rstrip("/") + "/"))

    def has_any(self, prefix: str = "") -> bool:
        # A folder prefix ends with "/": "data/a" must not find "data/ab/...".
        listing = self._listing_prefix(prefix.rstrip("/") + "/" if prefix else "")
        try:
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=listing, MaxKeys=1)
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchBucket":
                return False
            raise
        return bool(page.get("Contents")) or (bool(prefix) and self.exists(prefix))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response["Error"]["Code"] in ABSENT:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str = "") -> int:
        keys = self.list(prefix)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self._key(k)} for k in keys[start : start + DELETE_BATCH]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, self._key(prefix.strip("/")), self.endpoint_url, self.client, self.transfer)
