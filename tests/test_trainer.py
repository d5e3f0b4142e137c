"""The tiny VLM and the mixture trainer: batches of every modality, learning, determinism, mixture effects."""

from collections import Counter

import numpy as np
import pytest
import torch

from mixtura_jobs.data.demo import make_demo_corpus
from mixtura_jobs.data.npz_shards import DomainSamples, read_domain
from mixtura_jobs.data.samples import Sample
from mixtura_jobs.data.sampling import group_members, sample_batch_indices
from mixtura_jobs.data.streaming import split_heldout
from mixtura_jobs.training import tokenizer
from mixtura_jobs.training.tiny_vlm import build_vlm
from mixtura_jobs.training.trainer import train_on_mixture

NAMES = ["digits", "shapes", "text", "video"]
CONFIG = {"steps": 30, "batch_size": 16, "log_every": 10}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict[str, DomainSamples]:
    root = tmp_path_factory.mktemp("demo")
    make_demo_corpus(root, samples_per_domain=60, seed=0)
    return {name: read_domain(root / name) for name in NAMES}


@pytest.fixture(scope="module")
def uniform_run(domains: dict[str, DomainSamples]) -> dict:
    return train_on_mixture(domains, dict.fromkeys(NAMES, 1.0), CONFIG, seed=0)


def by_domain(sizes: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    return group_members({name: np.arange(n) for name, n in sizes.items()})


def test_sampling_follows_the_weights() -> None:
    rng = np.random.default_rng(0)
    members = by_domain({"a": 5, "b": 7, "c": 9})
    picks = sample_batch_indices({"a": 3.0, "b": 1.0, "c": 0.0}, members, 4000, rng)
    counts = Counter(name for name, _ in picks)
    assert counts["c"] == 0 and abs(counts["a"] / 4000 - 0.75) < 0.03
    assert all(0 <= i < 5 for name, i in picks if name == "a") and {i for n, i in picks if n == "b"} == set(range(7))
    reordered = sample_batch_indices({"c": 0.0, "b": 1.0, "a": 3.0}, members, 4000, np.random.default_rng(0))
    assert reordered == picks


def test_sampling_by_cells_draws_a_cell_by_weight_then_a_sample_within_it() -> None:
    """Cells cut across domains; a cell's samples are its members in the train splits (positions there)."""
    groups = {"a": np.array(["x"] * 5 + ["y"] * 5), "b": np.array(["x", "y", "y", "y", "y", "z"])}
    members = group_members({"a": np.array([9, 0, 5, 3]), "b": np.array([1, 0])}, groups)
    assert members == {"x": [("a", 1), ("a", 3), ("b", 1)], "y": [("a", 0), ("a", 2), ("b", 0)], "z": []}
    picks = sample_batch_indices({"x": 0.75, "y": 0.25, "z": 0.5}, members, 4000, np.random.default_rng(0))
    in_x = [pick in members["x"] for pick in picks]
    assert all(pick in members["x"] or pick in members["y"] for pick in picks)
    # z's only sample is held out: its weight goes to the cells that have training samples.
    assert abs(np.mean(in_x) - 0.75) < 0.03
    assert set(picks) == set(members["x"]) | set(members["y"])


@pytest.mark.parametrize(
    ("weights", "message"), [({"a": 0.0}, "no weight"), ({"a": 1.0, "zz": 1.0}, "unknown domains or cells")]
)
def test_sampling_refuses_bad_mixtures(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_batch_indices(weights, by_domain({"a": 5}), 4, np.random.default_rng(0))


def test_training_by_cells_draws_from_the_cells(domains: dict[str, DomainSamples]) -> None:
    """A cell that holds exactly one domain's samples trains as that domain does, draw for draw."""
    config = {**CONFIG, "steps": 3}
    groups = {name: "g" if name == "digits" else f"rest/{name}" for name in domains}
    by_cell = train_on_mixture(domains, {"g": 1.0}, config, seed=0, groups=groups)
    assert by_cell["train_loss"] == train_on_mixture(domains, {"digits": 1.0}, config, seed=0)["train_loss"]


def test_heldout_split_is_fixed_per_domain() -> None:
    train, heldout = split_heldout("digits", 60, 0.2)
    assert len(heldout) == 12 and not set(train) & set(heldout) and len(train) + len(heldout) == 60
    again = split_heldout("digits", 60, 0.2)
    assert np.array_equal(again[1], heldout) and not np.array_equal(split_heldout("charts", 60, 0.2)[1], heldout)


def samples(*parts: DomainSamples) -> list[Sample]:
    return [part.sample(i, str(i)) for part in parts for i in range(len(part))]


def test_batches_of_every_modality(domains: dict[str, DomainSamples]) -> None:
    model = build_vlm(None, seed=0)
    image, text, video = (domains[n].select(range(3)) for n in ("digits", "text", "video"))
    for parts in ([text], [video], [image], [image, text, video]):
        batch = model.collate(samples(*parts))
        loss, per_sample = model.loss(batch)
        assert torch.isfinite(loss) and per_sample.shape == (len(batch.input_ids),)
    assert model.collate(samples(text)).pixel_values is None and model.collate(samples(text)).video_values is None
    mixed = model.collate(samples(image, text, video))
    assert mixed.has_image.tolist() == [True] * 3 + [False] * 6 and mixed.has_video.tolist() == [False] * 6 + [True] * 3
    assert mixed.pixel_values.shape == (9, 3, 64, 64) and mixed.video_values.shape == (9, 4, 3, 64, 64)
    sum_logp, n_tokens = model.answer_logprobs(mixed)
    answers = image.answers + text.answers + video.answers
    assert n_tokens.tolist() == [len(tokenizer.encode(a)) + 1 for a in answers]  # answer bytes and EOS
    assert (sum_logp < 0).all()
    # A row's loss does not depend on what else is in the batch (padding and visual tokens are masked).
    _, alone = model.loss(model.collate(samples(text)))
    torch.testing.assert_close(model.loss(mixed)[1][3:6], alone, atol=1e-5, rtol=1e-5)
    assert model.image_tokens(mixed.pixel_values[:2]).shape == (2, 1 + 64, 64)


def test_same_seed_same_model_and_rng_untouched() -> None:
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    a, b = build_vlm({"preset": "target"}, seed=1), build_vlm({"preset": "target"}, seed=1)
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert sum(p.numel() for p in a.parameters()) > sum(p.numel() for p in build_vlm(None, 1).parameters())


def test_proxy_learns(uniform_run: dict) -> None:
    losses = uniform_run["train_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0] - 1.0
    assert set(uniform_run["heldout_loss"]) == set(NAMES)
    assert uniform_run["objective"] == pytest.approx(np.mean(list(uniform_run["heldout_loss"].values())))
    assert uniform_run["steps"] == 30 and uniform_run["samples_per_second"] > 0


def test_training_is_deterministic(domains: dict[str, DomainSamples], uniform_run: dict, capsys) -> None:
    logged: list[dict] = []
    again = train_on_mixture(domains, dict.fromkeys(NAMES, 1.0), CONFIG, seed=0, on_log=logged.append)
    for key in ("heldout_loss", "objective", "train_loss"):
        assert again[key] == uniform_run[key]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step=")]
    assert len(lines) == 3 and lines[-1].startswith("step=30 loss=") and "samples_per_s=" in lines[-1]
    assert [entry["step"] for entry in logged] == [10, 20, 30]


def test_a_domain_left_out_is_learned_worse(domains: dict[str, DomainSamples], uniform_run: dict) -> None:
    without = train_on_mixture(domains, {**dict.fromkeys(NAMES, 1.0), "digits": 0.0}, CONFIG, seed=0)
    assert without["heldout_loss"]["digits"] > uniform_run["heldout_loss"]["digits"] + 0.2


def test_augment_hook_adds_to_the_loss(domains: dict[str, DomainSamples]) -> None:
    calls: list[tuple[int, int]] = []

    def augment(model, batch, step, rng, winner):
        sum_logp, n_tokens = winner
        assert sum_logp.requires_grad and n_tokens.shape == batch.has_image.shape
        calls.append((step, len(batch.input_ids)))
        return torch.tensor(10.0), {"extra": float(rng.random())}

    config = {**CONFIG, "steps": 2, "log_every": 1}
    logged: list[dict] = []
    plain = train_on_mixture(domains, {"digits": 1.0}, config, seed=0)
    hooked = train_on_mixture(domains, {"digits": 1.0}, config, seed=0, on_log=logged.append, augment=augment)
    assert calls == [(0, 16), (1, 16)] and all("extra" in entry for entry in logged)
    assert hooked["train_loss"][0] == pytest.approx(plain["train_loss"][0] + 10.0)


def test_mergemix_run_logs_both_losses_against_a_control(domains: dict[str, DomainSamples], uniform_run: dict) -> None:
    """Issue 7: a tiny CPU run with MergeMix finishes, logs the SFT and SimPO losses, and its held-out loss is
    finite; `uniform_run` (same data, seed and steps, no augmentation) is the control."""
    from mixtura_jobs.training.mergemix import MergeMixConfig, make_mergemix_augment

    logged: list[dict] = []
    augment = make_mergemix_augment(MergeMixConfig(enabled=True, r=4))
    mixed = train_on_mixture(domains, dict.fromkeys(NAMES, 1.0), CONFIG, seed=0, on_log=logged.append, augment=augment)
    assert [entry["step"] for entry in logged] == [10, 20, 30]
    assert all(np.isfinite(entry["loss"]) and np.isfinite(entry["simpo_loss"]) for entry in logged)
    assert all(0 <= entry["lambda"] <= 1 for entry in logged)
    assert np.isfinite(mixed["objective"]) and set(mixed["heldout_loss"]) == set(NAMES)
    assert mixed["heldout_loss"] != uniform_run["heldout_loss"]


def test_a_heldout_curve_leaves_the_training_untouched(domains: dict[str, DomainSamples], uniform_run: dict) -> None:
    evaluations: list[tuple[int, dict[str, float]]] = []
    curved = train_on_mixture(
        domains,
        dict.fromkeys(NAMES, 1.0),
        {**CONFIG, "eval_every": 10},
        seed=0,
        on_eval=lambda step, losses: evaluations.append((step, losses)),
    )
    assert [step for step, _ in curved["heldout_curve"]] == [0, 10, 20, 30]
    # Each evaluation reaches `on_eval` as it is made (early stopping's progress.json), per domain.
    assert [step for step, _ in evaluations] == [0, 10, 20] and set(evaluations[1][1]) == set(NAMES)
    means = [np.mean(list(losses.values())) for _, losses in evaluations]
    assert means == pytest.approx([v for _, v in curved["heldout_curve"][:3]])
    # Evaluating draws no random numbers and changes no weight: the run is the one without a curve.
    assert curved["heldout_curve"][-1][1] == curved["objective"] == uniform_run["objective"]
    assert curved["train_loss"] == uniform_run["train_loss"]
    assert curved["heldout_curve"][0][1] > curved["objective"]
    assert "heldout_curve" not in uniform_run
