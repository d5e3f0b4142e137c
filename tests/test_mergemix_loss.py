"""The mixed SimPO loss, the classification MCE, and the training hook on a stand-in VLM."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixtura_jobs.training.mergemix import MergeMixConfig, make_mergemix_augment, mixed_cross_entropy, mixed_simpo_loss
from tiny_models import clip_vision_tower


def log1p_exp(z: float) -> float:
    return math.log1p(math.exp(z))


def test_simpo_matches_hand_computed_two_example_batch():
    logp_w, logp_l = torch.tensor([-4.0, -9.0]), torch.tensor([-6.0, -8.0])
    n, lam_hat = torch.tensor([2, 3]), torch.tensor([0.25, 0.5])
    # z = β/|y|·(log π_w − log π_l) − (1 − λ̂): 0.5·2 − 0.75 = 0.25 and (1/3)·(−1) − 0.5 = −5/6
    expected = (log1p_exp(-0.25) + log1p_exp(5 / 6)) / 2
    assert mixed_simpo_loss(logp_w, logp_l, n, lam_hat).item() == pytest.approx(expected, rel=1e-6)
    # β = 2 doubles the reward difference but not the margin: z = 1.25 and −7/6
    expected = (log1p_exp(-1.25) + log1p_exp(7 / 6)) / 2
    assert mixed_simpo_loss(logp_w, logp_l, n, lam_hat, beta=2.0).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_lambda_hat_zero_is_plain_simpo_with_gamma_one(beta: float):
    g = torch.Generator().manual_seed(0)
    logp_w, logp_l = -10 * torch.rand(5, generator=g), -10 * torch.rand(5, generator=g)
    n = torch.randint(1, 8, (5,), generator=g)
    simpo = -F.logsigmoid(beta * (logp_w / n - logp_l / n) - 1.0).mean()  # princeton-nlp/SimPO, γ = 1
    torch.testing.assert_close(mixed_simpo_loss(logp_w, logp_l, n, 0.0, beta=beta), simpo)


def test_samples_without_answer_tokens_are_left_out():
    logp_w, logp_l = torch.tensor([-4.0, 0.0]), torch.tensor([-6.0, 0.0])
    loss = mixed_simpo_loss(logp_w, logp_l, torch.tensor([2, 0]), 0.25)
    assert loss.item() == pytest.approx(log1p_exp(-0.25))


def test_identical_images_with_lambda_hat_one_give_log_two():
    logp = torch.tensor([-3.0, -7.5])
    loss = mixed_simpo_loss(logp, logp.clone(), torch.tensor([3, 5]), torch.ones(2))
    assert loss.item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("detach_loser", [False, True])
def test_gradient_signs(detach_loser: bool):
    logp_w = torch.tensor([-4.0, -9.0], requires_grad=True)
    logp_l = torch.tensor([-6.0, -8.0], requires_grad=True)
    mixed_simpo_loss(logp_w, logp_l, torch.tensor([2, 3]), 0.5, detach_loser=detach_loser).backward()
    assert torch.all(logp_w.grad < 0), "raising log π(y|x) lowers the loss"
    if detach_loser:
        assert logp_l.grad is None
    else:
        assert torch.all(logp_l.grad > 0), "raising log π(y|x̂) raises the loss"


def test_raising_the_winner_likelihood_lowers_the_loss():
    n, logp_l = torch.tensor([4]), torch.tensor([-8.0])
    losses = [mixed_simpo_loss(torch.tensor([w]), logp_l, n, 0.3).item() for w in (-12.0, -8.0, -4.0, -1.0)]
    assert losses == sorted(losses, reverse=True)


def test_mixed_cross_entropy_interpolates_the_two_labels():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    y, y_partner = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 0, 1, 2])
    own, partner = F.cross_entropy(logits, y), F.cross_entropy(logits, y_partner)
    torch.testing.assert_close(mixed_cross_entropy(logits, y, y_partner, 1.0), own)
    torch.testing.assert_close(mixed_cross_entropy(logits, y, y_partner, 0.0), partner)
    torch.testing.assert_close(mixed_cross_entropy(logits, y, y_partner, 0.3), 0.3 * own + 0.7 * partner)


@dataclass
class Batch:
    pixel_values: Tensor | None
    has_image: Tensor
    input_ids: Tensor
    labels: Tensor
    attention_mask: Tensor


class StandInVLM(nn.Module):
    """Exposes what the hook needs: `vision_tower` and `answer_logprobs`; records each call."""

    def __init__(self, vocab: int = 32) -> None:
        super().__init__()
        self.vision_tower = clip_vision_tower().train()
        self.embed = nn.Embedding(vocab, 64)
        self.head = nn.Linear(64, vocab)
        self.calls: list[tuple[Batch, bool]] = []

    def answer_logprobs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        self.calls.append((batch, torch.is_grad_enabled()))
        hidden = self.embed(batch.input_ids)
        if batch.pixel_values is not None:
            image = self.vision_tower(pixel_values=batch.pixel_values).pooler_output
            hidden = hidden + (image * batch.has_image[:, None])[:, None]
        logp = self.head(hidden).log_softmax(-1)[:, :-1]
        labels = batch.labels[:, 1:]
        answer = labels != -100
        token_logp = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        return (token_logp * answer).sum(1), answer.sum(1)


def make_batch(has_image: list[bool], with_pixels: bool = True) -> Batch:
    g = torch.Generator().manual_seed(3)
    n = len(has_image)
    ids = torch.randint(0, 32, (n, 10), generator=g)
    labels = ids.clone()
    labels[:, :6] = -100
    labels[0, 6] = -100  # answers of different lengths
    pixels = torch.randn(n, 3, 64, 64, generator=g) if with_pixels else None
    return Batch(pixels, torch.tensor(has_image), ids, labels, torch.ones_like(ids))


def hook(**options):
    return make_mergemix_augment(MergeMixConfig(enabled=True, **options))


def test_hook_mixes_only_image_samples_and_scores_the_pair():
    model, batch = StandInVLM(), make_batch([True, False, True, True])
    loss, stats = hook(weight=0.5)(model, batch, 0, np.random.default_rng(0))
    (winner, _), (loser, loser_grad) = model.calls
    assert winner.input_ids.shape[0] == loser.input_ids.shape[0] == 3
    torch.testing.assert_close(winner.pixel_values, batch.pixel_values[[0, 2, 3]])
    assert loser_grad and loss.requires_grad
    assert loss.item() == pytest.approx(0.5 * stats["simpo_loss"])
    assert 0 <= stats["lambda"] <= 1 and stats["merged_fraction"] == pytest.approx(16 / 64)
    loss.backward()
    assert model.vision_tower.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_mixing_ratio_equals_the_mask_area():
    model, batch = StandInVLM(), make_batch([True] * 4)
    _, stats = hook()(model, batch, 0, np.random.default_rng(5))
    (winner, _), (loser, _) = model.calls
    own = (loser.pixel_values == winner.pixel_values).all(dim=1).float().mean((1, 2))
    torch.testing.assert_close(own, torch.full((4,), stats["lambda_hat"]))
    assert stats["lambda_hat"] == math.floor(stats["lambda"] * 64) / 64


def test_detached_loser_runs_without_grad():
    model = StandInVLM()
    loss, _ = hook(detach_loser=True)(model, make_batch([True] * 3), 0, np.random.default_rng(0))
    assert [grad for _, grad in model.calls] == [True, False]
    assert loss.requires_grad


def test_trainer_winner_logprobs_save_a_forward_and_give_the_same_loss():
    batch = make_batch([True, True, False, True])
    model = StandInVLM()
    own, _ = hook()(model, batch, 0, np.random.default_rng(1))
    reused_model = StandInVLM()
    winner = reused_model.answer_logprobs(batch)
    reused, _ = hook()(reused_model, batch, 0, np.random.default_rng(1), winner=winner)
    assert len(reused_model.calls) == 2  # the trainer's forward and the loser's
    torch.testing.assert_close(reused, own)


def test_gaussian_rescale_gives_ratios_in_unit_interval():
    _, stats = hook(lambda_rescale=True)(StandInVLM(), make_batch([True] * 4), 0, np.random.default_rng(2))
    assert 0 <= stats["lambda_hat"] <= 1


@pytest.mark.parametrize(
    ("config", "batch"),
    [
        (MergeMixConfig(enabled=False), make_batch([True, True])),
        (MergeMixConfig(enabled=True), make_batch([False, False], with_pixels=False)),
        (MergeMixConfig(enabled=True), make_batch([False, False])),
        (MergeMixConfig(enabled=True), make_batch([True, False])),
    ],
    ids=["disabled", "no-pixels", "no-images", "one-image"],
)
def test_hook_is_zero_without_a_pair(config: MergeMixConfig, batch: Batch):
    model = StandInVLM()
    loss, stats = make_mergemix_augment(config)(model, batch, 0, np.random.default_rng(0))
    assert loss.item() == 0 and stats["simpo_loss"] == 0 and not model.calls


@pytest.mark.parametrize("field", ["alpha", "beta", "weight"])
def test_config_refuses_bad_values(field: str):
    with pytest.raises(ValueError, match=f"mergemix.{field}"):
        MergeMixConfig(**{field: -1.0})
