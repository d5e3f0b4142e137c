"""MergeMix losses: the mixed SimPO preference loss for VLMs and mixed cross-entropy for classifiers."""

import torch
import torch.nn.functional as F
from torch import Tensor


def mixed_simpo_loss(
    logp_chosen: Tensor,
    logp_rejected: Tensor,
    num_tokens: Tensor,
    lam_hat: Tensor | float,
    beta: float = 1.0,
    detach_loser: bool = False,
) -> Tensor:
    """L = −mean log σ((β/|y|) log π(y|x) − (β/|y|) log π(y|x̂) − (1 − λ̂)).

    `logp_*` are per-sample sums of answer-token log-probabilities (B,), `num_tokens` is |y| (B,).
    With λ̂ = 0 this is plain SimPO with γ = 1; with λ̂ = 1 and x̂ = x it is log 2.
    Samples without answer tokens (truncated away) are left out of the mean.
    `detach_loser` stops the gradient through the mixed image's branch, as the released code does.
    """
    if detach_loser:
        logp_rejected = logp_rejected.detach()
    scored = num_tokens > 0
    scale = beta / num_tokens.clamp(min=1).to(logp_chosen.dtype)
    margin = 1.0 - torch.as_tensor(lam_hat, dtype=logp_chosen.dtype, device=logp_chosen.device)
    losses = -F.logsigmoid(scale * logp_chosen - scale * logp_rejected - margin)
    return (losses * scored).sum() / scored.sum().clamp(min=1)


def mixed_cross_entropy(
    logits_mixed: Tensor, target: Tensor, target_partner: Tensor, lam_hat: Tensor | float
) -> Tensor:
    """MCE = mean of λ̂·CE(f(x̂), y_i) + (1 − λ̂)·CE(f(x̂), y_π(i)); add CE on the clean image separately."""
    own = F.cross_entropy(logits_mixed, target, reduction="none")
    partner = F.cross_entropy(logits_mixed, target_partner, reduction="none")
    return (lam_hat * own + (1 - lam_hat) * partner).mean()
