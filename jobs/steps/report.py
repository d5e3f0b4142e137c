"""report: an HTML page with PNG plots of the search, written to `report/` in the store."""

from __future__ import annotations

import argparse
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mixtura_jobs.search import cell_weights
from mixtura_jobs.search.final_pick import MIN_TRIALS_FOR_POSTERIOR
from mixtura_jobs.search.gp_ucb import posterior_at_observations
from mixtura_jobs.search.simplex import uniform_weights
from mixtura_jobs.steps.context import StepContext
from mixtura_jobs.steps.propose import load_space, observations
from mixtura_operator import layout
from mixtura_operator.api.plan import searches

TOP_CANDIDATES = 8


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
    ax.set_title("Mixture weights per method")
    ax.legend(fontsize=8)
    return _png(fig)


def trials_plot(rounds: np.ndarray, losses: np.ndarray) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    order = np.arange(len(losses))
    left.scatter(order, losses, c=rounds, cmap="viridis")
    left.plot(order, np.minimum.accumulate(losses), color="black", lw=1, label="best so far")
    left.set_xlabel("trial")
    left.set_ylabel("held-out loss (lower is better)")
    left.set_title("Objective per trial")
    left.legend(fontsize=8)
    per_round = [losses[rounds <= r].min() for r in np.unique(rounds)]
    right.plot(np.unique(rounds), per_round, marker="o")
    right.set_xticks(np.unique(rounds))
    right.set_xlabel("round")
    right.set_ylabel("best held-out loss")
    right.set_title("Best so far per round")
    return _png(fig)


def loss_curve_plot(train_loss: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(train_loss)
    ax.set_xlabel("log interval")
    ax.set_ylabel("training loss")
    ax.set_title("Final training")
    return _png(fig)


def posterior_plot(ids: list[str], observed: np.ndarray, mean: np.ndarray, std: np.ndarray) -> bytes:
    """The top candidates by posterior mean: the GP's held-out loss with a 2-std band, and the observed one."""
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(ids) + 1.5), 3.6))
    positions = np.arange(len(ids))
    ax.errorbar(positions, mean, yerr=2 * std, fmt="o", capsize=3, label="GP posterior mean ± 2 std")
    ax.scatter(positions, observed, marker="x", color="black", zorder=3, label="observed")
    ax.set_xticks(positions, ids)
    ax.set_xlabel("trial (best posterior mean first)")
    ax.set_ylabel("held-out loss")
    ax.set_title("Top candidates under the surrogate")
    ax.legend(fontsize=8)
    return _png(fig)


def _top_candidates(ctx: StepContext, top: int) -> bytes | None:
    """posterior_plot of the `top` trials with the best posterior mean, in the space the search ran in."""
    space = load_space(ctx)
    ids, x, y = observations(ctx, space)
    if len(ids) < MIN_TRIALS_FOR_POSTERIOR:
        return None
    mean, std = posterior_at_observations(x, y, seed=ctx.seed, space=space.geometry)
    order = np.argsort(-mean, kind="stable")[:top]
    return posterior_plot([ids[i] for i in order], -y[order], -mean[order], std[order])


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


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def run(ctx: StepContext, args: argparse.Namespace) -> None:
    if ctx.is_done("report"):
        return
    spec, store, names = ctx.search.spec, ctx.store, ctx.domain_names
    columns = {"uniform": uniform_weights(len(names))}
    manual = {d.name: d.weight for d in ctx.domainset.spec.domains if d.weight is not None}
    if manual:
        columns["manual"] = ctx.vector(manual) / sum(manual.values())
    if store.exists(layout.MADMIX):
        columns["MaD-Mix"] = ctx.vector(store.get_json(layout.MADMIX)["weights"])
    final = store.get_json(layout.FINAL_MIXTURE) if store.exists(layout.FINAL_MIXTURE) else None
    final_metrics = store.get_json(layout.FINAL_METRICS) if store.exists(layout.FINAL_METRICS) else None
    trials = []
    for key in store.list("trials"):
        if key.endswith("/_SUCCESS"):
            tid = key.split("/")[1]
            trials.append((tid, store.get_json(layout.trial_mixture(tid)), store.get_json(layout.trial_metrics(tid))))
    failed = sorted(key.split("/")[1] for key in store.list("trials") if key.endswith("/_FAILED"))
    if trials:
        best = min(trials, key=lambda t: t[2]["objective"])
        columns["best trial"] = ctx.vector(best[1]["weights"])
    if final:
        columns[f"final ({final['source']})"] = ctx.vector(final["weights"])

    images = {"weights.png": weights_plot(names, columns)}
    if trials:
        rounds = np.array([t[1]["round"] for t in trials])
        images["trials.png"] = trials_plot(rounds, np.array([t[2]["objective"] for t in trials]))
    surrogate = _top_candidates(ctx, TOP_CANDIDATES) if searches(spec) else None
    if surrogate is not None:
        images["surrogate.png"] = surrogate
    if final_metrics and final_metrics.get("train_loss"):
        images["final-training.png"] = loss_curve_plot(final_metrics["train_loss"])
    cells_html = ""
    if store.exists(layout.CELLS):
        record = store.get_json(layout.CELLS)
        images["concepts.png"] = concept_thumbnails(_exemplar_images(ctx, record["exemplars"]))
        cells_html = '<h2>Concepts</h2><img src="concepts.png" alt="most typical images per concept">'
        chosen = final or (best[1] if trials else None)
        if chosen and "cells" in chosen:
            which = "final" if final else "best trial"
            title = f"Cell weights ({which})"
            images["cells.png"] = cell_heatmap(cell_weights.from_record(record), chosen["cells"], title)
            cells_html += '<h2>Cells</h2><img src="cells.png" alt="cell weights, concept x task">'
    for name, data in images.items():
        store.put_bytes(f"report/{name}", data)

    weight_rows = [[n] + [f"{w[i]:.4f}" for w in columns.values()] for i, n in enumerate(names)]
    trial_rows = [
        [
            tid,
            str(m["round"]),
            m["source"],
            f"{r['objective']:.4f}",
            r.get("augmentation", "none"),
            " ".join(f"{n}={w:.2f}" for n, w in m["weights"].items()),
        ]
        for tid, m, r in trials
    ] + [[tid, "", "", "failed", "", ""] for tid in failed]
    summary = [
        ["search", f"{ctx.search.metadata.namespace}/{ctx.search.metadata.name}"],
        ["method", spec.method],
        ["trials", f"{len(trials)} succeeded, {len(failed)} failed of {spec.budget.max_trials}"],
        ["augmentation", spec.training.augmentation.type],
    ]
    if final_metrics:
        summary.append(["final held-out loss", f"{final_metrics['objective']:.4f}"])
    name = html.escape(ctx.search.metadata.name)
    trials_plot_html = '<h2>Trials</h2><img src="trials.png" alt="objective per trial">' if trials else ""
    if surrogate is not None:
        trials_plot_html += '<h2>Surrogate</h2><img src="surrogate.png" alt="GP posterior of the top candidates">'

    final_plot_html = (
        '<h2>Final training</h2><img src="final-training.png" alt="final training loss">'
        if "final-training.png" in images
        else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Mixtura: {name}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:90%}}img{{max-width:100%}}</style></head><body>
<h1>Mixture search {name}</h1>
{_table(["", ""], summary)}
<h2>Weights</h2><img src="weights.png" alt="weights per method">
{_table(["domain", *columns], weight_rows)}
{trials_plot_html}
{_table(["trial", "round", "source", "held-out loss", "augmentation", "weights"], trial_rows) if trial_rows else ""}
{final_plot_html}
{cells_html}
</body></html>"""
    store.put_bytes(layout.REPORT, page.encode())
    print(f"report {store.uri}/{layout.REPORT}", flush=True)
    ctx.mark_done("report")
