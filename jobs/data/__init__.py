"""Corpora on disk: the formats a domain's samples are read from and written to, and the demo corpus made in
code. Nothing here trains or searches; `training/` and `steps/` take the samples it reads."""
