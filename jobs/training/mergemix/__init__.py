"""MergeMix: token-merge mixup with ToMe saliency and the mixed SimPO preference loss (arXiv 2510.23479)."""

from .augment import MergeMixConfig, MixedImages, make_mergemix_augment, mergemix_images
from .loss import mixed_cross_entropy, mixed_simpo_loss
from .mixing import derangement, gaussian_lambda, mix_images, recover_scores, sample_lambda, topk_mask
from .tome import Matching, bipartite_soft_matching, merge_source, merge_wavg, parse_r
from .vision import ToMeOutput, tome_forward

__all__ = [
    "Matching",
    "MergeMixConfig",
    "MixedImages",
    "ToMeOutput",
    "bipartite_soft_matching",
    "derangement",
    "gaussian_lambda",
    "make_mergemix_augment",
    "merge_source",
    "merge_wavg",
    "mergemix_images",
    "mix_images",
    "mixed_cross_entropy",
    "mixed_simpo_loss",
    "parse_r",
    "recover_scores",
    "sample_lambda",
    "tome_forward",
    "topk_mask",
]
