"""The search math, pure: numpy and torch in, numbers out; no I/O, no Kubernetes, no API models.

MaD-Mix scores (`madmix`), concept clusters (`concepts`), concept x task cells and their caps
(`cell_weights`), the spaces mixtures live in (`spaces`, `simplex`; `mixtures` names their coordinates),
the proposers (`gp_ucb`, `regmix`) and the final pick (`final_pick`). The steps feed them plain arrays.
"""
