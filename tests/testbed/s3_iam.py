"""An S3 server that checks credentials: moto in a process of its own with IAM enforced, and users whose policies
allow some buckets. moto's switch for checking credentials is process-wide, so the shared loopback server
(testbed.s3) stays open to any key while this one refuses what its users' policies do not allow.

Run as a script, it is moto's server with one fix: moto checks a signature against the query string as decoded
(`prefix=data/`), while clients sign it encoded (`prefix=data%2F`), so any listing by a folder prefix would be
refused as SignatureDoesNotMatch.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import boto3

from testbed.procs import Process, free_port, wait_for

REGION = "us-east-1"
# moto takes any keys while it does not check them, which is when the users are made.
SETUP = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", "region_name": REGION}


def _encoded_query(path: str) -> str:
    base, _, query = path.partition("?")
    if not query:
        return path
    pairs = (pair.partition("=") for pair in query.split("&"))
    safe = "-_.~"
    return base + "?" + "&".join(f"{quote(unquote(k), safe)}{s}{quote(unquote(v), safe)}" for k, s, v in pairs)


def _serve(argv: list[str]) -> None:
    from moto.iam import access_control
    from moto.server import main

    init = access_control.IAMRequestBase.__init__

    def encoded_init(self, *args, path: str, **kwargs) -> None:
        init(self, *args, path=_encoded_query(path), **kwargs)

    access_control.IAMRequestBase.__init__ = encoded_init
    main(argv)


@dataclass
class IamS3:
    process: Process
    endpoint: str
    users: dict[str, dict[str, str]]  # user -> AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY

    def stop(self) -> None:
        self.process.stop()


def start_iam_s3(log_dir: Path, users: dict[str, list[str]]) -> IamS3:
    """A server with the buckets named in `users` (user -> buckets it may do anything with), then checking
    every request's credentials."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    tests = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "testbed.s3_iam", "-H", "127.0.0.1", "-p", str(port)]
    process = Process("s3-iam", argv, log_dir, env={"PYTHONPATH": path})
    wait_for(
        "IAM-checking S3 server", lambda: urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1), 60, [process]
    )
    iam = boto3.client("iam", endpoint_url=endpoint, **SETUP)
    s3 = boto3.client("s3", endpoint_url=endpoint, **SETUP)
    for bucket in sorted({b for buckets in users.values() for b in buckets}):
        s3.create_bucket(Bucket=bucket)
    keys = {}
    for user, buckets in users.items():
        iam.create_user(UserName=user)
        resources = [f"arn:aws:s3:::{b}{suffix}" for b in buckets for suffix in ("", "/*")]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": resources}]}
        iam.put_user_policy(UserName=user, PolicyName="buckets", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    enforce = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(enforce, timeout=10).close()
    return IamS3(process, endpoint, keys)


if __name__ == "__main__":
    _serve(sys.argv[1:])
