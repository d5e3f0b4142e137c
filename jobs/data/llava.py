"""LLaVA-style corpora: JSON (a list of rows) or JSONL files of `{id, image?, video?, conversations}` rows,
`conversations` alternating human and gpt messages, the first holding `<image>`. `image` and `video` paths are
relative to the domain's `imageRoot`; a video is an mp4 (any container PyAV reads) or a folder of frames.

Each JSON file is a shard; its rows are small, the images are read only for the rows chosen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from braceexpand import braceexpand

from mixtura_jobs.data.formats import BadSample, DataSource, Item
from mixtura_jobs.data.records import (
    VIDEO_EXTENSIONS,
    BadRecord,
    conversation_turns,
    decode_image,
    decode_video,
    video_from_frames,
)
from mixtura_jobs.data.samples import Sample
from mixtura_operator.domain_index import ShardIndex
from mixtura_operator.store import ArtifactNotFound


def _rows(name: str, data: bytes) -> list:
    try:
        if name.endswith(".jsonl"):
            return [json.loads(line) if line.strip() else None for line in data.splitlines()]
        rows = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"LLaVA file {name} does not parse: {error}") from None
    if not isinstance(rows, list):
        raise ValueError(f"LLaVA file {name}: expected a JSON list of rows")
    return rows


class LlavaReader:
    format = "llava"

    def __init__(self, source: DataSource, images: DataSource, pattern: str | None = None) -> None:
        self.source = source
        self.images = images
        self.pattern = pattern

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read + self.images.bytes_read

    def list_shards(self) -> list[str]:
        if self.pattern is not None:
            return list(braceexpand(self.pattern))
        return [key for key in self.source.list() if key.endswith((".json", ".jsonl")) and "/" not in key]

    def index_shard(self, name: str) -> ShardIndex:
        data = self.source.read(name)
        rows = [r if isinstance(r, dict) else {} for r in _rows(name, data) if r is not None]
        return ShardIndex(
            name,
            len(rows),
            image=sum("image" in r for r in rows),
            video=sum("video" in r for r in rows),
            bytes=len(data),
        )

    def _media(self, path: str, what: str) -> bytes:
        try:
            return self.images.read(path)
        except ArtifactNotFound:
            raise BadRecord(f"{what} file {path} is missing under imageRoot") from None

    def _video(self, path: str) -> object:
        if path.lower().endswith(VIDEO_EXTENSIONS):
            return decode_video(self._media(path, "video"))
        frames = self.images.list(path.rstrip("/"))
        if not frames:
            raise BadRecord(f"video frame folder {path} is missing under imageRoot")
        return video_from_frames([self.images.read(k) for k in frames])

    def _sample(self, shard: str, position: int, row: object) -> Item:
        if not isinstance(row, dict):
            return BadSample(f"{shard}:{position}", "the row is not a JSON object")
        key = str(row.get("id", f"{shard}:{position}"))
        if "conversations" not in row:
            return BadSample(key, "the row has no `conversations`")
        try:
            return Sample(
                key=key,
                turns=conversation_turns(row["conversations"]),
                image=decode_image(self._media(row["image"], "image")) if "image" in row else None,
                video=self._video(row["video"]) if "video" in row else None,
            )
        except BadRecord as error:
            return BadSample(key, str(error))

    def read_shard(self, shard: ShardIndex, positions: Sequence[int] | None = None) -> Iterator[Item]:
        rows = [r for r in _rows(shard.name, self.source.read(shard.name)) if r is not None]
        for i in range(len(rows)) if positions is None else positions:
            yield self._sample(shard.name, i, rows[i])
