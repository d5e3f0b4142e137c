"""Raw records to `Sample`s: image and video bytes decoded, captions and LLaVA conversations turned into turns.

Every format reader goes through these, so a caption or a conversation means the same in a tar shard and in a
JSON file. A record that cannot be turned into a sample raises `BadRecord` with the reason.
"""

from __future__ import annotations

import io
import json

import av
import numpy as np
from PIL import Image

from mixtura_jobs.data.samples import Sample

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
VIDEO_EXTENSIONS = ("mp4", "webm", "avi", "mov")
# Video frames kept per sample, evenly spaced: the encoders and the tiny model use at most 8.
MAX_VIDEO_FRAMES = 8


class BadRecord(ValueError):
    """A record that is not a usable sample; the message says why."""


def decode_image(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as error:  # PIL raises many kinds for corrupt bytes
        raise BadRecord(f"image does not decode: {type(error).__name__}: {error}") from None


def _evenly(frames: list[np.ndarray]) -> np.ndarray:
    keep = np.linspace(0, len(frames) - 1, min(MAX_VIDEO_FRAMES, len(frames))).round().astype(int)
    return np.stack([frames[i] for i in keep])


def decode_video(data: bytes) -> np.ndarray:
    """(T, H, W, 3) uint8 of an mp4 (or any container PyAV reads), at most MAX_VIDEO_FRAMES evenly spaced."""
    try:
        with av.open(io.BytesIO(data)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except Exception as error:  # PyAV raises its own error kinds for corrupt bytes
        raise BadRecord(f"video does not decode: {type(error).__name__}: {error}") from None
    if not frames:
        raise BadRecord("video has no frames")
    return _evenly(frames)


def video_from_frames(frames: list[bytes]) -> np.ndarray:
    """A video given as a folder of frame images, in name order."""
    if not frames:
        raise BadRecord("video frame folder is empty")
    return _evenly([decode_image(f) for f in frames])


def conversation_turns(conversations: object) -> tuple[tuple[str, str], ...]:
    """LLaVA `conversations` ([{from: human|gpt, value}], alternating) as (user, assistant) turns."""
    if not isinstance(conversations, list) or not conversations:
        raise BadRecord("`conversations` is missing or empty")
    turns, user = [], None
    for message in conversations:
        if not isinstance(message, dict) or not isinstance(message.get("value"), str):
            raise BadRecord("a conversation message has no string `value`")
        if message.get("from") in ("human", "user"):
            user = message["value"]
        elif user is not None:
            turns.append((user, message["value"]))
            user = None
    if not turns:
        raise BadRecord("`conversations` has no user turn answered by the assistant")
    return tuple(turns)


def text_turns(record: dict) -> tuple[tuple[str, str], ...]:
    """The turns of a JSON record: its `conversations`, else its `caption` (with an optional `prompt`)."""
    if "conversations" in record:
        return conversation_turns(record["conversations"])
    if isinstance(record.get("caption"), str):
        return ((str(record.get("prompt", "")), record["caption"]),)
    raise BadRecord("the record has neither `conversations` nor a `caption`")


def parse_json(data: bytes) -> dict:
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRecord(f"JSON does not parse: {error}") from None
    if not isinstance(record, dict):
        raise BadRecord("the JSON record is not an object")
    return record


def webdataset_sample(key: str, members: dict[str, bytes]) -> Sample:
    """A sample from one key's tar members (img2dataset layout: KEY.jpg|png|webp, KEY.txt or KEY.json, and
    optionally KEY.mp4)."""
    if "json" in members:
        turns = text_turns(parse_json(members["json"]))
    elif "txt" in members:
        turns = (("", members["txt"].decode("utf-8", errors="replace").strip()),)
    else:
        raise BadRecord("no .txt or .json member")
    image_ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
    video_ext = next((e for e in VIDEO_EXTENSIONS if e in members), None)
    return Sample(
        key=key,
        turns=turns,
        image=None if image_ext is None else decode_image(members[image_ext]),
        video=None if video_ext is None else decode_video(members[video_ext]),
    )
