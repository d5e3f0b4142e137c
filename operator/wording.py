"""Counts in messages that users read: "1 trial", "3 trials", never "1 trial(s)"."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and its noun: singular for 1, else `plural` (default: the noun and an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
