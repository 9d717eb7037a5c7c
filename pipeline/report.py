"""Run reports a person can read in a minute, and the history of runs.

After every run: `<pipeline_root>/reports/<run id>/report.md` and `report.html` (the same text),
with the training curve and the embedding map beside them. `history` lists past runs from ML
Metadata with their metrics and plots RMSE across runs.
"""
import io
from typing import List

import markdown
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tabulate import tabulate  # noqa: E402
from tfx.dsl.io import fileio  # noqa: E402

from components.evaluation import MAE, RMSE  # noqa: E402
from models.artifacts import MAP_FILE  # noqa: E402
from ratings import paths  # noqa: E402
from pipeline import configs, metadata, run_summary  # noqa: E402

REPORTS = "reports"
CURVE_FILE = "training_curve.png"
HISTORY_PLOT = "rmse_history.png"
# Columns of `history`'s rows.
HISTORY_HEADERS = ["run", "span", "ratings", "RMSE", "MAE", "NDCG@k", "Recall@k", "blessed", "pushed", "note"]


def reports_dir(config: configs.PipelineConfig) -> str:
    return paths.join(config.pipeline_root, REPORTS)


def _save_figure(figure, path: str) -> None:
    """PNG bytes written through fileio, so a report folder in a bucket works as a local one."""
    png = io.BytesIO()
    figure.savefig(png, format="png")
    plt.close(figure)
    paths.write_bytes(path, png.getvalue())


def _folder_name(run_id: str) -> str:
    return run_id.replace(":", "-")


def _plot_curve(history, path: str) -> bool:
    if not history.get("rmse"):
        return False
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = range(1, len(history["rmse"]) + 1)
    axes.plot(epochs, history["rmse"], marker="o", label="train RMSE")
    if history.get("val_rmse"):
        axes.plot(epochs, history["val_rmse"], marker="o", label="eval RMSE")
    axes.set_xlabel("epoch")
    axes.set_ylabel("RMSE")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    _save_figure(figure, path)
    return True


def markdown_report(summary: run_summary.RunSummary, images: List[str]) -> str:
    metric = lambda values, key: f"{values[key]:.4f}" if key in values else "-"
    lines = [f"# movierec run {summary.run_id}", ""]
    verdict = ("blessed" if summary.blessed else "not blessed") if summary.blessed is not None else "stopped"
    lines += [f"**Result:** {verdict}; {summary.push_note or 'nothing pushed'}", ""]
    if summary.error:
        lines += [f"**Error:** {summary.error}", ""]
    lines += ["## Data", ""]
    if summary.rows:
        span = f"span {summary.span}: " if summary.span else ""
        lines += [f"{span}" + ", ".join(f"{split} {n:,}" for split, n in summary.rows.items())
                  + f" ratings (total {sum(summary.rows.values()):,})", ""]
    validation = summary.components.get("ValidationGate", "not reached")
    lines += [f"Validation against the schema and the last accepted data: "
              f"{'passed' if validation in ('ran', 'cached') else validation}", ""]
    if summary.drift_line():
        lines += [summary.drift_line()[0].upper() + summary.drift_line()[1:], ""]
    if summary.metrics:
        lines += ["## Evaluation", "", tabulate(
            [["overall", metric(summary.metrics, RMSE), metric(summary.baseline_metrics, RMSE),
              metric(summary.metrics, MAE), int(summary.metrics.get("example_count", 0))]]
            + [[name, metric(models.get("candidate", {}), RMSE), metric(models.get("baseline", {}), RMSE),
                metric(models.get("candidate", {}), MAE), int(models.get("candidate", {}).get("example_count", 0))]
               for name, models in sorted(summary.slices.items())],
            headers=["slice", "RMSE", "last blessed RMSE", "MAE", "examples"], tablefmt="github",
            disable_numparse=True), ""]
    if summary.ranking_evaluation:
        lines += ["## Ranking", "",
                  f"`recommend`'s top {summary.ranking_evaluation['k']} over the whole catalogue, each user's training "
                  "movies excluded, against the user's eval-split movies (NDCG, recall, precision, MAP "
                  "averaged over users; coverage = share of the catalogue recommended to anyone; "
                  "popularity rank = mean rank by training ratings of the movies recommended, 1 = most rated).", ""]
        for relevance, label in run_summary.RANKING_RELEVANCE:
            rows = summary.ranking_rows(relevance)
            if rows:
                lines += [f"{label}:", "", tabulate(
                    rows, headers=["model", "slice", "users", "NDCG", "recall", "precision", "MAP", "coverage",
                                   "popularity rank"], tablefmt="github", disable_numparse=True), ""]
    if summary.gates:
        figure = lambda value: "-" if value is None else f"{value:.4f}"
        lines += ["## Gates", "",
                  "Each gate's checks: the candidate's figure, what it was compared with, and the limit it had "
                  "to meet (not gated: reported only).", "", tabulate(
                      [[verdict["gate"], check["name"], figure(check["value"]), figure(check["reference"]),
                        figure(check["limit"]), {True: "passed", False: "REFUSED", None: "not gated"}[check["passed"]],
                        check["note"]]
                       for verdict in summary.gates for check in verdict["checks"]],
                      headers=["gate", "check", "candidate", "reference", "limit", "result", "in words"],
                      tablefmt="github", disable_numparse=True), ""]
        if summary.decided_by:
            lines += [f"**{'Closest call' if summary.blessed else 'Refused by'}:** " + "; ".join(summary.decided_by), ""]
    if summary.infra_blessed is not None:
        lines += [f"Infra validation: {'passed' if summary.infra_blessed else 'failed'} - {summary.infra_note}", ""]
    lines += ["## Components", "", tabulate(
        [[name, state, f"{summary.seconds.get(name, 0):.1f}"] for name, state in summary.components.items()],
        headers=["component", "state", "seconds"], tablefmt="github"), ""]
    for image in images:
        lines += [f"![{image}]({image})", ""]
    return "\n".join(lines)


def write_report(config: configs.PipelineConfig, summary: run_summary.RunSummary) -> str:
    """Writes the run's report folder; returns the HTML file's path."""
    folder = paths.join(reports_dir(config), _folder_name(summary.run_id))
    fileio.makedirs(folder)
    images = []
    if _plot_curve(summary.history, paths.join(folder, CURVE_FILE)):
        images.append(CURVE_FILE)
    if summary.model_run_dir and paths.exists(paths.join(summary.model_run_dir, MAP_FILE)):
        fileio.copy(paths.join(summary.model_run_dir, MAP_FILE), paths.join(folder, MAP_FILE), overwrite=True)
        images.append(MAP_FILE)
    text = markdown_report(summary, images)
    paths.write_bytes(paths.join(folder, "report.md"), text.encode("utf-8"))
    html = markdown.markdown(text, extensions=["tables"])
    path = paths.join(folder, "report.html")
    paths.write_bytes(path, (f"<!doctype html><html><head><meta charset='utf-8'><title>movierec {summary.run_id}"
                f"</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}"
                f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}"
                f"</style></head><body>{html}</body></html>").encode("utf-8"))
    return path


def history(config: configs.PipelineConfig, last: int):
    """(table rows, plot path) for the newest `last` runs of the pipeline, oldest first."""
    store = metadata.connect(config)
    summaries = [run_summary.summarize(config, run_id)
                 for run_id in run_summary.run_ids(store, config.pipeline_name)[-last:]]
    rows = [[s.run_id, s.span or "", sum(s.rows.values()) or "",
             f"{s.metrics[RMSE]:.4f}" if RMSE in s.metrics else "", f"{s.metrics[MAE]:.4f}" if MAE in s.metrics else "",
             *(f"{s.ranking_overall()[key]:.4f}" if s.ranking_overall() else "" for key in ("ndcg", "recall")),
             {True: "yes", False: "no", None: "-"}[s.blessed], s.pushed_version or "",
             s.error or "; ".join((["drift accepted on purpose"] if s.drift_accepted else [])
                                  + ([] if s.blessed else s.decided_by))] for s in summaries]
    plotted = [(i, s.metrics[RMSE], bool(s.blessed)) for i, s in enumerate(summaries) if RMSE in s.metrics]
    path = paths.join(reports_dir(config), HISTORY_PLOT)
    if plotted:
        fileio.makedirs(reports_dir(config))
        figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
        axes.plot([p[0] for p in plotted], [p[1] for p in plotted], color="grey", alpha=0.5)
        for index, rmse, blessed in plotted:
            axes.scatter(index, rmse, color="tab:green" if blessed else "tab:red", zorder=3)
        axes.set_xticks([p[0] for p in plotted], [summaries[p[0]].run_id[5:16] for p in plotted],
                        rotation=30, fontsize=7)
        axes.set_ylabel("eval RMSE")
        axes.set_title("RMSE by run (green: blessed, red: not)")
        figure.tight_layout()
        _save_figure(figure, path)
    return rows, (path if plotted else None)
