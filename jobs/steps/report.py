"""report: an HTML page with PNG plots of the search, written to `report/` in the store."""

from __future__ import annotations

import argparse
import html
import io
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from mixtura_jobs.search import cell_weights, comparison, gp_ucb, seed_noise, surrogate_diagnostics
from mixtura_jobs.search.final_pick import MIN_TRIALS_FOR_POSTERIOR
from mixtura_jobs.search.simplex import uniform_weights
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.propose import load_space, measured_noise, observations, prior_runs, stopped_trials
from mixtura_operator import layout
from mixtura_operator.api.mixturesearch import UNRELIABLE_LOO_SPEARMAN, BaselineComparison, SurrogateFit
from mixtura_operator.api.plan import final_baselines, searches
from mixtura_operator.objective import label as objective_label
from mixtura_operator.objective import objective_value, score

TOP_CANDIDATES = 8
# What the comparison's curves show: the built-in trainer's held-out loss, whatever spec.objective is.
CURVE_OBJECTIVE = "held-out loss (mean over domains)"
SLICE_GRID = 41
# A succeeded trial as the report reads it: (trial ID, its mixture record, its metrics, its objective value).
Trial = tuple[str, dict, dict, float]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def weights_plot(domains: list[str], columns: dict[str, np.ndarray]) -> bytes:
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(domains)), 3.6))
    width = 0.8 / len(columns)
    for i, (label, w) in enumerate(columns.items()):
        ax.bar(np.arange(len(domains)) + (i - (len(columns) - 1) / 2) * width, w, width, label=label)
    ax.set_xticks(np.arange(len(domains)), domains, rotation=30, ha="right")
    ax.set_ylabel("weight")
    ax.set_title("Chosen mixture against the baselines (domain weights)")
    ax.legend(fontsize=8)
    return _png(fig)


def trials_plot(rounds: np.ndarray, values: np.ndarray, name: str, maximize: bool) -> bytes:
    """Each trial's objective value and the best so far; `name` is the objective's label."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    order = np.arange(len(values))
    best = np.maximum if maximize else np.minimum
    left.scatter(order, values, c=rounds, cmap="viridis")
    left.plot(order, best.accumulate(values), color="black", lw=1, label="best so far")
    left.set_xlabel("trial")
    left.set_ylabel(name)
    left.set_title("Objective per trial")
    left.legend(fontsize=8)
    per_round = [best.reduce(values[rounds <= r]) for r in np.unique(rounds)]
    right.plot(np.unique(rounds), per_round, marker="o")
    right.set_xticks(np.unique(rounds))
    right.set_xlabel("round")
    right.set_ylabel(f"best {name}")
    right.set_title("Best so far per round")
    return _png(fig)


def loss_curve_plot(train_loss: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(train_loss)
    ax.set_xlabel("log interval")
    ax.set_ylabel("training loss")
    ax.set_title("Final training")
    return _png(fig)


def comparison_plot(curves: dict[str, list[list[float]]]) -> bytes:
    """Held-out loss during the target model's training, on the chosen mixture and on each baseline."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, curve in curves.items():
        steps, losses = np.array(curve).T
        ax.plot(steps, losses, marker=".", lw=2 if label == "chosen" else 1.2, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(CURVE_OBJECTIVE)
    ax.set_title("Target model: chosen mixture against the baselines")
    ax.legend(fontsize=8)
    return _png(fig)


def loo_plot(loo: surrogate_diagnostics.LeaveOneOut, name: str) -> bytes:
    """Each trial's objective predicted by the GP fitted on the others, against the observed one."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.errorbar(loo.observed, loo.predicted, yerr=2 * loo.std, fmt="o", capsize=2, alpha=0.8)
    low, high = min(loo.observed.min(), loo.predicted.min()), max(loo.observed.max(), loo.predicted.max())
    ax.plot([low, high], [low, high], color="black", lw=0.8, ls="--", label="perfect prediction")
    ax.set_xlabel(f"observed {name}")
    ax.set_ylabel("leave-one-out prediction ± 2 std")
    ax.set_title(f"Leave-one-out: R² {loo.r2:.2f}, Spearman {loo.spearman:.2f}")
    ax.legend(fontsize=8)
    return _png(fig)


def sensitivity_plot(names: list[str], scales: np.ndarray) -> bytes:
    """1 / lengthscale per coordinate: the longer the bar, the more the objective moves with it."""
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 3.6))
    ax.bar(np.arange(len(names)), 1.0 / scales)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("1 / lengthscale")
    ax.set_title("Sensitivity of the surrogate to each coordinate")
    return _png(fig)


def slice_plot(grid: np.ndarray, surface: np.ndarray, names: tuple[str, str], center: np.ndarray, name: str) -> bytes:
    """The posterior mean over two coordinates, the others rescaled to stay on the simplex."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    image = ax.imshow(
        surface.T, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), aspect="auto", cmap="viridis_r"
    )
    ax.scatter([center[0]], [center[1]], marker="*", s=120, color="red", label="chosen mixture")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("Posterior mean over the two most sensitive coordinates")
    ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(image, ax=ax, label=f"predicted {name}")
    return _png(fig)


def posterior_plot(ids: list[str], observed: np.ndarray, mean: np.ndarray, std: np.ndarray, name: str) -> bytes:
    """The top candidates by posterior mean: the GP's objective (`name`) with a 2-std band, and the observed one."""
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(ids) + 1.5), 3.6))
    positions = np.arange(len(ids))
    ax.errorbar(positions, mean, yerr=2 * std, fmt="o", capsize=3, label="GP posterior mean ± 2 std")
    ax.scatter(positions, observed, marker="x", color="black", zorder=3, label="observed")
    ax.set_xticks(positions, ids)
    ax.set_xlabel("trial (best posterior mean first)")
    ax.set_ylabel(name)
    ax.set_title("Top candidates under the surrogate")
    ax.legend(fontsize=8)
    return _png(fig)


def _fit_surrogate(x: np.ndarray, y: np.ndarray, seed: int, noise: float | None):
    """The GP the search fits (gp_ucb.fit_gp), seeded as the final pick seeds it, with its noise, without
    touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return gp_ucb.fit_gp(x, y, noise=noise)


def _surrogate(ctx: StepContext, chosen: dict | None) -> tuple[dict[str, bytes], str, dict | None]:
    """The surrogate's section: top candidates by posterior mean, leave-one-out predictions, sensitivities
    and a posterior slice; and its leave-one-out fit for status. Nothing before MIN_TRIALS_FOR_POSTERIOR."""
    space = load_space(ctx)
    ids, x, y, _ = observations(ctx, space)
    if len(ids) < MIN_TRIALS_FOR_POSTERIOR:
        return {}, "", None
    objective = ctx.search.spec.objective
    name = objective_label(objective)
    noise = measured_noise(ctx, ids, y)
    model = _fit_surrogate(x, y, ctx.seed, None if noise is None else noise.variance)
    mean, std = surrogate_diagnostics.posterior_at(model, x)
    order = np.argsort(-mean, kind="stable")[:TOP_CANDIDATES]
    # The GP maximises scores; `score` is its own inverse, so it maps them back to the objective's values.
    observed, predicted = score(y[order], objective), score(mean[order], objective)
    images = {"surrogate.png": posterior_plot([ids[i] for i in order], observed, predicted, std[order], name)}
    loo = surrogate_diagnostics.gp_leave_one_out(model)
    loo = replace(loo, observed=score(loo.observed, objective), predicted=score(loo.predicted, objective))
    images["loo.png"] = loo_plot(loo, name)
    scales = surrogate_diagnostics.lengthscales(model, x.shape[1])
    images["sensitivity.png"] = sensitivity_plot(space.coordinates, scales)
    i, j = surrogate_diagnostics.most_sensitive(scales)
    center = space.point(chosen) if chosen else x[int(np.argmax(mean))]
    grid = np.linspace(0.0, 1.0, SLICE_GRID)
    surface = score(surrogate_diagnostics.posterior_slice(model, center, i, j, grid, space.blocks), objective)
    names = (space.coordinates[i], space.coordinates[j])
    images["slice.png"] = slice_plot(grid, surface, names, center[[i, j]], name)
    fit = SurrogateFit(loo_r2=loo.r2, loo_spearman=loo.spearman)
    warning = (
        ""
        if fit.reliable
        else f'<p class="warn">Leave-one-out Spearman {loo.spearman:.2f} is below {UNRELIABLE_LOO_SPEARMAN}: the '
        "trials do not explain the objective yet; run more trials before trusting the surrogate.</p>"
    )
    section = f"""<h2>Surrogate</h2>{warning}
<img src="surrogate.png" alt="GP posterior of the top candidates">
<img src="loo.png" alt="leave-one-out predicted against observed">
<img src="sensitivity.png" alt="sensitivity per coordinate">
<img src="slice.png" alt="posterior mean over the two most sensitive coordinates">"""
    return images, section, fit.wire()


def _comparison(ctx: StepContext, final_metrics: dict | None) -> tuple[dict[str, bytes], str, list[dict]]:
    """The target model on the chosen mixture against each finalTraining.compareWith baseline."""
    baselines = [b for b in final_baselines(ctx.search.spec) if ctx.store.exists(layout.final_metrics(b))]
    if not baselines or not final_metrics or "heldout_curve" not in final_metrics:
        return {}, "", []
    chosen = final_metrics["heldout_curve"]
    curves, rows, entries = {"chosen": chosen}, [], []
    for baseline in baselines:
        curve = ctx.store.get_json(layout.final_metrics(baseline))["heldout_curve"]
        curves[baseline] = curve
        ratio = comparison.steps_ratio(chosen, curve)
        entries.append(BaselineComparison(baseline=baseline, objective=curve[-1][1], steps_ratio=ratio).wire())
        reached = "never" if ratio is None else f"{ratio * curve[-1][0]:.0f}"
        # The converse says by how much the baseline wins when the chosen mixture never gets there.
        converse = comparison.steps_to_reach(curve, chosen[-1][1])
        row = [baseline, f"{curve[-1][1]:.4f}", reached, f"{curve[-1][0]:.0f}", _ratio_text(ratio)]
        rows.append([*row, "never" if converse is None else f"{converse:.0f}"])
    header = ["baseline", "its final loss", "chosen reaches it at step", "steps", "ratio"]
    header.append("it reaches the chosen's final loss at step")
    section = f"""<h2>Chosen mixture against the baselines</h2>
<p>The target model trained on each mixture with the same steps, seed and settings. Ratio: the steps the chosen
mixture needs to reach the baseline's final loss, over the baseline's steps (below 1: fewer steps).</p>
<img src="comparison.png" alt="held-out loss curves of the chosen mixture and the baselines">
{_table(header, rows)}"""
    return {"comparison.png": comparison_plot(curves)}, section, entries


def _schedule_text(spec) -> str:
    parallel = spec.budget.parallel_trials
    text = {
        "async": f"async: each freed slot of {parallel} proposed at once, conditioned on the running trials",
        "rounds": f"rounds of {parallel} trials",
    }[spec.search.schedule]
    return text + (f"; the best {spec.search.repeat_top} rerun with new seeds" if spec.search.repeat_top else "")


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "not reached"
    return f"{ratio:.2f} ({1 / ratio:.2f}x fewer steps)" if ratio > 0 else "0 (from the start)"


def _noise_rows(trials: list[Trial]) -> list[list[str]]:
    """The seed noise measured by repeats beside the spread between mixtures, as summary rows."""
    repeat_of = {tid: m["repeatOf"] for tid, m, _, _ in trials if "repeatOf" in m}
    spread = seed_noise.spread(np.array([value for tid, _, _, value in trials if tid not in repeat_of]))
    values = np.array([value for *_, value in trials])
    noise = seed_noise.pooled(values, seed_noise.repeat_groups([t[0] for t in trials], repeat_of))
    rows = [["spread between mixtures (std of trial objectives)", f"{spread:.4f}"]]
    if noise is not None:
        ratio = f", {noise.std / spread:.2f} of the spread" if spread > 0 else ""
        rows.append(
            [
                "seed noise (std over repeats)",
                f"{noise.std:.4f} ({noise.groups} mixtures rerun with new seeds{ratio}; the GP's noise)",
            ]
        )
    return rows


def concept_thumbnails(exemplars: dict[str, list[np.ndarray]]) -> bytes:
    """One row per concept: its most typical images (the page's heading names the figure)."""
    width = max(len(images) for images in exemplars.values())
    fig, axes = plt.subplots(len(exemplars), width, figsize=(1.1 * width + 0.8, 1.1 * len(exemplars)), squeeze=False)
    for row, (concept, images) in zip(axes, exemplars.items(), strict=True):
        for column, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("on" if column < len(images) else "off")
            if column < len(images):
                ax.imshow(images[column])
        row[0].set_ylabel(concept, rotation=0, ha="right", va="center")
    return _png(fig)


def cell_heatmap(cells: cell_weights.Cells, weights: dict[str, float], title: str) -> bytes:
    """Cell weights as a concept x task grid; empty cells left blank."""
    grid = np.full((len(cells.concepts), len(cells.tasks)), np.nan)
    grid[cells.concept_of, cells.task_of] = [weights.get(cell_id, 0.0) for cell_id in cells.ids]
    fig, ax = plt.subplots(figsize=(1.3 * len(cells.tasks) + 2, 0.45 * len(cells.concepts) + 1.5))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    bright = 0.6 * np.nanmax(grid)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "black" if value > bright else "white"
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(np.arange(len(cells.tasks)), cells.tasks, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(cells.concepts)), cells.concepts)
    ax.set_xlabel("task")
    ax.set_ylabel("concept")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="weight")
    return _png(fig)


def _exemplar_images(ctx: StepContext, exemplars: dict[str, list[list]]) -> dict[str, list[np.ndarray]]:
    wanted: dict[str, set[int]] = {}
    for rows in exemplars.values():
        for domain, position in rows:
            wanted.setdefault(domain, set()).add(position)
    images = {
        (name, p): s.image for name, positions in wanted.items() for p, s in ctx.domain_data(name).read(positions)
    }
    return {
        concept: [images[domain, position] for domain, position in rows if (domain, position) in images]
        for concept, rows in exemplars.items()
    }


def _table(header: list[str], rows: list[list[str]], css: str = "", raw: int | None = None) -> str:
    """An HTML table of text cells; the cells of column `raw` are HTML already (links)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if k == raw else html.escape(c)}</td>" for k, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table class="{css}"><tr>{head}</tr>{body}</table></div>'


def _weights_text(mixture: dict) -> str:
    return " ".join(f"{n}={w:.2f}" for n, w in mixture["weights"].items())


def _stopped_text(spec) -> str:
    """How the surrogate saw the stopped trials (the table shows each one's last reported objective)."""
    rule = spec.search.early_stopping.type
    return f"by {rule}; the surrogate takes each at its last reported objective, before the end of its training"


def _trial_links(store, tid: str) -> str:
    """Links to a trial's metrics (a stopped trial has its progress instead) and log in the store, relative to the
    report's folder."""
    stopped = store.exists(layout.stopped_marker(f"trial/{tid}")) and not store.exists(layout.trial_metrics(tid))
    links = [
        f'<a href="../{layout.trial_progress(tid)}">progress</a>'
        if stopped
        else f'<a href="../{layout.trial_metrics(tid)}">metrics</a>'
    ]
    if store.exists(layout.trial_log(tid)):
        links.append(f'<a href="../{layout.trial_log(tid)}">log</a>')
    return " ".join(links)


# Click a column heading to sort the trial table by it (numbers as numbers); a second click reverses.
SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const table = th.closest("table"), rows = [...table.rows].slice(1);
  const up = th.dataset.up !== "1"; th.dataset.up = up ? "1" : "0";
  const key = r => { const t = r.cells[col].textContent, n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
  rows.forEach(r => table.tBodies[0].appendChild(r));
}));
</script>"""


def _trials(store, objective) -> tuple[list[Trial], list[str]]:
    """The succeeded trials, best first by the objective's goal, and the IDs of the failed ones (a trial whose
    metrics hold no usable objective among them, as the operator counted it)."""
    trials, failed = [], sorted(key.split("/")[1] for key in store.list("trials") if key.endswith("/_FAILED"))
    for key in store.list("trials"):
        if key.endswith("/_SUCCESS"):
            tid = key.split("/")[1]
            metrics = store.get_json(layout.trial_metrics(tid))
            try:
                value = objective_value(metrics, objective)
            except (ValueError, KeyError):
                failed.append(tid)
                continue
            trials.append((tid, store.get_json(layout.trial_mixture(tid)), metrics, value))
    trials.sort(key=lambda t: -score(t[3], objective))
    return trials, failed


def _trial_rows(store, trials: list[Trial], failed: list[str], stopped: list[tuple[str, float]]) -> list[list[str]]:
    """The trials table: succeeded, failed, then stopped early."""
    rows = [
        [
            tid,
            f"{value:.4f}",
            str(m["round"]),
            f"repeat of {m['repeatOf']}" if "repeatOf" in m else m["source"],
            r.get("augmentation", "none"),
            _weights_text(m),
            _trial_links(store, tid),
        ]
        for tid, m, r, value in trials
    ] + [[tid, "failed", "", "", "", "", _trial_links(store, tid)] for tid in failed]
    return rows + [
        [tid, f"{value:.4f} stopped", str(m["round"]), m["source"], "", _weights_text(m), _trial_links(store, tid)]
        for tid, value in stopped
        for m in [store.get_json(layout.trial_mixture(tid))]
    ]


def _summary(
    ctx: StepContext,
    outcomes: tuple[list[Trial], list[str], list[tuple[str, float]]],
    final_metrics: dict | None,
    comparisons: list[dict],
    fit: dict | None,
) -> list[list[str]]:
    """The report's first table: what was searched, how, and what came of it (`outcomes`: the succeeded,
    failed and stopped trials)."""
    spec, (trials, failed, stopped) = ctx.search.spec, outcomes
    measure = objective_label(spec.objective)
    reruns = f" and {spec.search.repeat_top} reruns" if spec.search.repeat_top else ""
    summary = [
        ["search", f"{ctx.search.metadata.namespace}/{ctx.search.metadata.name}"],
        ["objective", measure],
        ["method", spec.method],
        [
            "trials",
            f"{len(trials)} succeeded, {len(failed)} failed, {len(stopped)} stopped early of "
            f"{spec.budget.max_trials}{reruns}",
        ],
        ["augmentation", spec.training.augmentation.type],
    ]
    if searches(spec):
        summary.append(["schedule", _schedule_text(spec)])
        summary += _noise_rows(trials)
    if stopped:
        summary.append(["stopped trials", _stopped_text(spec)])
    if spec.search.prior_runs is not None:
        summary.append(["imported runs", f"{len(prior_runs(ctx))} from {spec.search.prior_runs.uri} (prior:<row>)"])
    if final_metrics:
        value = objective_value(final_metrics, spec.objective)
        summary.append([f"chosen mixture's final {measure}", f"{value:.4f}"])
    summary += [[f"steps ratio against {c['baseline']}", _ratio_text(c.get("stepsRatio"))] for c in comparisons]
    if fit is not None:
        summary.append(["surrogate leave-one-out", f"R² {fit['looR2']:.2f}, Spearman {fit['looSpearman']:.2f}"])
    return summary


def _weight_columns(ctx: StepContext, best: dict | None, final: dict | None) -> dict[str, np.ndarray]:
    """The mixtures the report compares, by column title: uniform, the manual weights, MaD-Mix's, the best
    trial's and the chosen one, each that the search has."""
    names, store = ctx.domain_names, ctx.store
    columns = {"uniform": uniform_weights(len(names))}
    manual = {d.name: d.weight for d in ctx.domainset.spec.domains if d.weight is not None}
    if manual:
        columns["manual"] = ctx.vector(manual) / sum(manual.values())
    if store.exists(layout.MADMIX):
        columns["MaD-Mix"] = ctx.vector(store.get_json(layout.MADMIX)["weights"])
    if best:
        columns["best trial"] = ctx.vector(best["weights"])
    if final:
        columns[f"chosen ({final['source']})"] = ctx.vector(final["weights"])
    return columns


def _cells(ctx: StepContext, chosen: dict | None, final: bool) -> tuple[dict[str, bytes], str]:
    """The concept thumbnails and the chosen mixture's cell heatmap (images, html), when the search has cells."""
    if not ctx.store.exists(layout.CELLS):
        return {}, ""
    record = ctx.store.get_json(layout.CELLS)
    images = {"concepts.png": concept_thumbnails(_exemplar_images(ctx, record["exemplars"]))}
    section = '<h2>Concepts</h2><img src="concepts.png" alt="most typical images per concept">'
    if chosen and "cells" in chosen:
        title = f"Cell weights ({'chosen' if final else 'best trial'})"
        images["cells.png"] = cell_heatmap(cell_weights.from_record(record), chosen["cells"], title)
        section += '<h2>Cells</h2><img src="cells.png" alt="cell weights, concept x task">'
    return images, section


def _page(name: str, summary: list[list[str]], columns: dict[str, np.ndarray], names: list[str], *sections: str) -> str:
    """The report's HTML: the summary, the weights per column, then `sections` in order."""
    weight_rows = [[n] + [f"{w[i]:.4f}" for w in columns.values()] for i, n in enumerate(names)]
    body = "\n".join(sections)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Mixtura: {name}</title>
<style>body{{font-family:sans-serif;margin:2em auto;max-width:70em;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:90%}}
th{{background:#f3f3f3}}table.sortable th{{cursor:pointer}}img{{max-width:100%;margin:0.5em 0}}
.scroll{{max-width:100%;overflow-x:auto}}.warn{{color:#a00;font-weight:bold}}</style></head><body>
<h1>Mixture search {name}</h1>
{_table(["", ""], summary)}
<h2>Weights</h2><img src="weights.png" alt="weights per method">
{_table(["domain", *columns], weight_rows)}
{body}
{SORT_SCRIPT}
</body></html>"""


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    if ctx.is_done("report"):
        return
    spec, store, names = ctx.search.spec, ctx.store, ctx.domain_names
    final = store.get_json(layout.FINAL_MIXTURE) if store.exists(layout.FINAL_MIXTURE) else None
    final_metrics = store.get_json(layout.FINAL_METRICS) if store.exists(layout.FINAL_METRICS) else None
    objective, measure = spec.objective, objective_label(spec.objective)
    trials, failed = _trials(store, objective)
    stopped = stopped_trials(ctx)
    best = trials[0][1] if trials else None
    columns = _weight_columns(ctx, best, final)
    chosen = final or best

    images = {"weights.png": weights_plot(names, columns)}
    trials_html = ""
    if trials:
        by_id = sorted(trials)
        rounds = np.array([t[1]["round"] for t in by_id])
        values = np.array([t[3] for t in by_id])
        images["trials.png"] = trials_plot(rounds, values, measure, objective.goal == "maximize")
        trials_html = '<img src="trials.png" alt="objective per trial">'
    rows = _trial_rows(store, trials, failed, stopped)
    if rows:
        header = ["trial", measure, "round", "source", "augmentation", "domain weights", "store"]
        table = _table(header, rows, css="sortable", raw=6)
        trials_html = f"<h2>Trials</h2>{trials_html}\n<p>Click a heading to sort.</p>{table}"
    surrogate_images, surrogate_html, fit = _surrogate(ctx, chosen) if searches(spec) else ({}, "", None)
    comparison_images, comparison_html, comparisons = _comparison(ctx, final_metrics)
    cell_images, cells_html = _cells(ctx, chosen, final is not None)
    images |= surrogate_images | comparison_images | cell_images
    final_plot_html = ""
    if final_metrics and final_metrics.get("train_loss"):
        images["final-training.png"] = loss_curve_plot(final_metrics["train_loss"])
        final_plot_html = '<h2>Final training</h2><img src="final-training.png" alt="final training loss">'
    for image, data in images.items():
        store.put_bytes(f"report/{image}", data)

    summary = _summary(ctx, (trials, failed, stopped), final_metrics, comparisons, fit)
    name = html.escape(ctx.search.metadata.name)
    sections = (comparison_html, trials_html, surrogate_html, final_plot_html, cells_html)
    page = _page(name, summary, columns, names, *sections)
    store.put_json(layout.REPORT_SUMMARY, {"comparison": comparisons, **({"surrogate": fit} if fit else {})})
    store.put_bytes(layout.REPORT, page.encode())
    print(f"report {store.uri}/{layout.REPORT}", flush=True)
    ctx.mark_done("report")
