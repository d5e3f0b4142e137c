"""Tiny random Hugging Face VLM checkpoints made in code (no hub): a LLaVA and a Qwen2-VL, each saved with
`save_pretrained` beside its processor, as a user's checkpoint directory is shaped."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

# ChatML, as Qwen's templates write it; content is a string or a list of {"type": image|video|text} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ IMAGE }}{% elif part['type'] == 'video' %}{{ VIDEO }}"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TEXT = [
    "describe the image a digit one two three four five six seven eight nine zero",
    "read the text which bar is tallest locate the shape continue describe the video",
    "the quick brown fox jumps over the lazy dog 0123456789 red green blue circle square",
]


def tokenizer(special: list[str], image_markup: str, video_markup: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few lines, with the chat and visual special tokens."""
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *special]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_TEXT * 4, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens={}
    )
    wrapped.chat_template = CHAT_TEMPLATE.replace("{{ IMAGE }}", image_markup).replace("{{ VIDEO }}", video_markup)
    return wrapped


TINY_LLAVA = {
    "vision": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    },
}


def save_llava(directory: Path, shape: dict | None = None) -> Path:
    """A random LLaVA (CLIP tower, projector, Llama), `shape` giving its `vision` and `text` config fields
    (default TINY_LLAVA); a `vocab_size` larger than the tokenizer's pads the embeddings as real models do."""
    shape = shape or TINY_LLAVA
    tok = tokenizer(["<image>"], "<image>", "<image>")
    torch.manual_seed(0)
    text = {"vocab_size": len(tok), "max_position_embeddings": 2048, **shape["text"]}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**shape["vision"]),
        text_config=LlamaConfig(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **text),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    side = shape["vision"]["image_size"]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
        tokenizer=tok,
        patch_size=shape["vision"]["patch_size"],
        image_token="<image>",
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tok.chat_template,
    )
    processor.save_pretrained(directory)
    return directory


def save_qwen2_vl(directory: Path) -> Path:
    markup = "<|vision_start|>{}<|vision_end|>"
    tok = tokenizer(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
        markup.format("<|image_pad|>"),
        markup.format("<|video_pad|>"),
    )
    ids = tok.convert_tokens_to_ids
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 512,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "pad_token_id": tok.pad_token_id,
            "bos_token_id": None,
            "eos_token_id": tok.eos_token_id,
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 8,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(directory)
    pixels = {"min_pixels": 32 * 32, "max_pixels": 64 * 64}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=8, merge_size=2, **pixels),
        video_processor=Qwen2VLVideoProcessor(patch_size=8, merge_size=2, **pixels),
        tokenizer=tok,
        chat_template=tok.chat_template,
    )
    processor.save_pretrained(directory)
    return directory
