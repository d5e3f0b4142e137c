"""A byte-level tokenizer: no vocabulary file, identical on every machine.

Ids 0..255 are the UTF-8 bytes of the text; the special ids follow them.
"""

PAD_ID = 256
BOS_ID = 257
EOS_ID = 258
IMAGE_ID = 259
VOCAB_SIZE = 260

SPECIAL_IDS = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "image": IMAGE_ID}


def encode(text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """The UTF-8 bytes of `text`, optionally wrapped in BOS/EOS."""
    ids = list(text.encode("utf-8"))
    return ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])


def decode(ids: list[int]) -> str:
    """Inverse of `encode`; special ids are dropped, broken UTF-8 is replaced rather than raised."""
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
