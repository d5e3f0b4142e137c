"""The text view of a search's status, shared by `mixtura run` (at the end) and `mixtura status`."""

from __future__ import annotations

from mixtura_operator.api.mixturesearch import MixtureSearchStatus


def weights_table(status: MixtureSearchStatus) -> str:
    columns = {
        "madmix": status.madmix_weights,
        "best trial": status.best_trial and status.best_trial.weights,
        "final": status.final_weights,
    }
    columns = {k: v for k, v in columns.items() if v}
    if not columns:
        return ""
    domains = sorted({d for weights in columns.values() for d in weights})
    rows = [f"{'domain':<14}" + "".join(f"{name:>12}" for name in columns)]
    for domain in domains:
        rows.append(f"{domain:<14}" + "".join(f"{w.get(domain, 0.0):>12.4f}" for w in columns.values()))
    return "\n".join(rows)


def render(name: str, status: MixtureSearchStatus) -> str:
    t = status.trials
    lines = [
        f"MixtureSearch {name}: {status.phase.value}  {status.message}",
        f"trials: {t.progress} finished ({t.succeeded} succeeded, {t.failed} failed, "
        f"{f'{t.stopped} stopped early, ' if t.stopped else ''}{t.running} running, "
        f"{t.pending} pending), round {status.round}",
    ]
    if status.best_trial:
        lines.append(f"best trial: {status.best_trial.id} {status.objective} {status.best_trial.objective:.4f}")
    if status.final_objective is not None:
        lines.append(f"final {status.objective}: {status.final_objective:.4f}")
    for c in status.comparison:
        ratio = "not reached" if c.steps_ratio is None else f"{c.steps_ratio:.2f}"
        lines.append(f"against {c.baseline}: its final {status.objective} {c.objective:.4f}, steps ratio {ratio}")
    if status.surrogate is not None:
        fit = status.surrogate
        lines.append(f"surrogate leave-one-out: R² {fit.loo_r2:.2f}, Spearman {fit.loo_spearman:.2f}")
    lines += [f"condition {c.type}={c.status} ({c.reason}) {c.message}".rstrip() for c in status.conditions]
    table = weights_table(status)
    if table:
        lines.append(table)
    if status.artifacts.model:
        lines.append(f"final model: {status.artifacts.model.removeprefix('file://')}")
    if status.artifacts.report:
        lines.append(f"report: {status.artifacts.report.removeprefix('file://')}")
    return "\n".join(lines)
