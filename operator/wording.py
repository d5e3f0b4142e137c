"""Counts in messages that users read: "1 trial", "3 trials", never "1 trial(s)"."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and its noun: singular for 1, else `plural` (default: the noun and an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def counted_subject(count: int, noun: str, verb: str, plural_verb: str) -> str:
    """`counted` with a verb that agrees: "1 trial runs", "3 trials run"."""
    return f"{counted(count, noun)} {verb if count == 1 else plural_verb}"
