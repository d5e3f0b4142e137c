"""WebDataset tar shards in the img2dataset layout: KEY.jpg|png|webp with KEY.txt or KEY.json (a caption, or
LLaVA `conversations`), optionally KEY.mp4, one sample's members next to each other.

The domain index keeps each sample's byte offsets, so a sample is one ranged read and one bad member spoils only
its own sample: a shard is read sample by sample, the bytes of each parsed by webdataset's tar iterator.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import webdataset
from braceexpand import braceexpand
from webdataset.tariterators import base_plus_ext, tar_file_iterator

from mixtura_jobs.data.formats import BadSample, DataSource, Item
from mixtura_jobs.data.records import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, BadRecord, webdataset_sample
from mixtura_jobs.data.samples import Sample
from mixtura_operator.domain_index import ShardIndex

_BLOCK = 512


def _member_end(member: tarfile.TarInfo) -> int:
    return member.offset_data + -(-member.size // _BLOCK) * _BLOCK


class WebDatasetReader:
    format = "webdataset"

    def __init__(self, source: DataSource, pattern: str | None = None) -> None:
        self.source = source
        self.pattern = pattern

    @property
    def bytes_read(self) -> int:
        return self.source.bytes_read

    def list_shards(self) -> list[str]:
        if self.pattern is not None:
            return list(braceexpand(self.pattern))
        return [key for key in self.source.list() if key.endswith(".tar")]

    def index_shard(self, name: str) -> ShardIndex:
        offsets: list[int] = []
        image = video = 0
        key, end = None, 0
        stream = self.source.open(name)
        try:
            # ignore_zeros: past an unreadable header, tarfile looks for the next good one block by block.
            for member in tarfile.open(fileobj=stream, mode="r|*", ignore_zeros=True):  # noqa: SIM115 (closed below)
                base, ext = base_plus_ext(member.name)
                if not member.isreg() or base is None:
                    continue
                if member.offset > end:
                    # Bytes no header accounts for: a sample of its own, which reads as a corrupt member.
                    offsets.append(end)
                    key = None
                if base != key:
                    key = base
                    offsets.append(member.offset)
                image += ext.lower() in IMAGE_EXTENSIONS
                video += ext.lower() in VIDEO_EXTENSIONS
                end = _member_end(member)
        except tarfile.TarError as error:
            print(f"warning: shard {name}: indexed {len(offsets)} samples, then {error}", flush=True)
        finally:
            stream.close()
        return ShardIndex(name, len(offsets), image, video, end, (*offsets, end))

    def _sample(self, shard: str, position: int, chunk: bytes) -> Item:
        try:
            files = list(tar_file_iterator(io.BytesIO(chunk)))
        except (tarfile.TarError, OSError) as error:
            return BadSample(f"{shard}:{position}", f"corrupt tar member: {error}")
        members: dict[str, bytes] = {}
        key = None
        for file in files:
            base, ext = base_plus_ext(file["fname"])
            key = key or base
            members[ext.lower()] = file["data"]
        if key is None:
            return BadSample(f"{shard}:{position}", "no tar members")
        try:
            return webdataset_sample(key, members)
        except BadRecord as error:
            return BadSample(key, str(error))

    def read_shard(self, shard: ShardIndex, positions: Sequence[int] | None = None) -> Iterator[Item]:
        offsets = shard.offsets
        if positions is not None:
            for i in positions:
                yield self._sample(shard.name, i, self.source.read_range(shard.name, offsets[i], offsets[i + 1]))
            return
        stream = self.source.open(shard.name)
        try:
            stream.read(offsets[0])
            for i in range(shard.samples):
                yield self._sample(shard.name, i, stream.read(offsets[i + 1] - offsets[i]))
        finally:
            stream.close()


def _encode_image(image: np.ndarray, ext: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG" if ext == "jpg" else ext.upper(), quality=95)
    return buffer.getvalue()


def encode_video(video: np.ndarray, fps: int = 8) -> bytes:
    """An mp4 (MPEG-4 part 2, every frame a key frame) of (T, H, W, 3) uint8 frames."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2", "g": "1"}
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def write_tar_shards(
    path: str | Path, samples: Sequence[Sample], image_ext: str = "png", shard_size: int = 256
) -> list[Path]:
    """Write `samples` as `shard-000000.tar`, ... under `path` (replacing stale ones): KEY.json with the
    caption (and prompt) or the conversation, KEY.<image_ext> and KEY.mp4 where the sample has them."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("shard-*.tar"):
        stale.unlink()
    written = []
    for k, start in enumerate(range(0, len(samples), shard_size)):
        shard = out / f"shard-{k:06d}.tar"
        with open(shard, "wb") as handle, webdataset.TarWriter(handle) as writer:
            for sample in samples[start : start + shard_size]:
                record = {"__key__": sample.key, "json": _text_record(sample)}
                if sample.image is not None:
                    record[image_ext] = _encode_image(sample.image, image_ext)
                if sample.video is not None:
                    record["mp4"] = encode_video(sample.video)
                writer.write(record)
        written.append(shard)
    return written


def _text_record(sample: Sample) -> dict:
    if len(sample.turns) == 1:
        return {"prompt": sample.prompt, "caption": sample.answer}
    messages = [[{"from": "human", "value": user}, {"from": "gpt", "value": answer}] for user, answer in sample.turns]
    return {"conversations": [message for pair in messages for message in pair]}
