"""One sample as every format reader yields it and every model backend takes it, whatever the corpus format.

The seam between `data/` (readers of npz, WebDataset, LLaVA-JSON corpora) and `training/` (model backends):
readers turn their records into `Sample`s; backends turn lists of `Sample`s into model batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    """`turns` are (user, assistant) pairs, the first user turn holding the `<image>` (or `<video>`)
    placeholder where the visual input goes when the format marks it; a caption is one turn with an empty or
    instruction prompt. `image` is (H, W, 3) uint8 of any size; `video` is (T, H, W, 3) uint8."""

    key: str
    turns: tuple[tuple[str, str], ...]
    image: np.ndarray | None = None
    video: np.ndarray | None = None

    @property
    def prompt(self) -> str:
        return self.turns[0][0]

    @property
    def answer(self) -> str:
        return self.turns[-1][1]

    @property
    def text(self) -> str:
        """The text modality of the sample: every turn, prompts and answers."""
        return " ".join(part for turn in self.turns for part in turn if part)

    @property
    def modalities(self) -> list[str]:
        present = {"image": self.image is not None, "text": True, "video": self.video is not None}
        return [m for m, has in present.items() if has]
