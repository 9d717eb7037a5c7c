"""Scheduled runs: MovieLens replayed as monthly spans through `movierec run`, run by run."""
import pathlib

from pipeline import metadata, report, run_summary
from tests.cli import movierec
from tests.pipeline_runs import Replay

# A trainer that wrecks what it is given: Adam steps of ~1.0 throw even warm-started vectors
# far off (a tiny learning rate would not do: the warm start alone is as good as the last model).
WEAK_TRAINER = "hyperparameters: {epochs: 2, learning_rate: 1.0}\n"


def test_span_replay(accepted_span_1, spans, tmp_path):
    replay = Replay(tmp_path, spans, start=accepted_span_1)  # span 1 run and pushed
    first = accepted_span_1.result
    assert first.returncode == 0, first.stderr[-3000:]
    summary = replay.summary()
    assert summary.span == 1 and len(replay.versions()) == 1
    v1 = replay.versions()[0]
    report_html = pathlib.Path(report.reports_dir(replay.config)) / summary.run_id.replace(":", "-") / "report.html"
    assert f"<td>{summary.metrics['root_mean_squared_error']:.4f}</td>" in report_html.read_text()
    assert "Validation against the schema and the last accepted data: passed" in report_html.read_text()
    assert (report_html.parent / "training_curve.png").is_file() and (report_html.parent / "movie_map.png").is_file()

    # A new span, and two runs SIGKILLed on it, during Transform and then during Trainer: each
    # leaves a RUNNING execution and partial outputs. The run after each marks that execution
    # abandoned and removes its outputs; the third run warm-starts from v1, is evaluated against
    # v1, and pushes once: v2.
    replay.add_span(2)
    killed = [replay.run_killed_during("Transform"), replay.run_killed_during("Trainer")]
    second = replay.run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Interrupted run: Trainer of run" in second.stderr
    summary = replay.summary()
    assert summary.span == 2 and summary.baseline_metrics and summary.blessed
    assert "Warm start: warm-started from" in second.stderr
    assert len(replay.versions()) == 2
    v2 = replay.versions()[1]
    store = metadata.connect(replay.config)
    assert sorted(e.id for e in store.get_executions() if run_summary.ABANDONED in e.custom_properties) == killed
    # TFX records outputs only for an execution that completed, so no run could reuse theirs.
    assert not [e for e in store.get_events_by_execution_ids(killed) if e.type == e.OUTPUT]
    assert not replay.leftovers("Transform", killed[0]) and not replay.leftovers("Trainer", killed[1])
    runs = run_summary.run_ids(store, replay.config.pipeline_name)
    assert [run_summary.summarize(replay.config, run).components[component]
            for run, component in zip(runs[-3:-1], ("Transform", "Trainer"))] == ["abandoned", "abandoned"]

    # Nothing new: a cheap no-op, and the model is already served.
    again = replay.run()
    assert again.returncode == 0, again.stderr[-3000:]
    states = replay.summary().components
    assert {states[c] for c in ("RatingsExampleGen", "Transform", "Trainer")} == {"cached"}
    assert replay.versions() == [v1, v2]

    # A corrupted span is stopped at validation: nothing trained, nothing pushed.
    replay.add_span(3, corrupt=True)
    third = replay.run()
    assert third.returncode == 1
    assert "data validation found" in third.stderr and "feature 'age'" in third.stderr
    assert replay.summary().components["ValidationGate"] == "failed"
    assert replay.versions() == [v1, v2]

    # A weakened trainer on the next (valid) span is not blessed and not pushed; exit code 3.
    replay.add_span(4)
    fourth = replay.run(WEAK_TRAINER)
    assert fourth.returncode == 3, fourth.stderr[-3000:]
    summary = replay.summary()
    assert summary.span == 4 and summary.blessed is False
    assert any("vs last blessed" in line for line in summary.decided_by), summary.decided_by
    assert fourth.stderr.strip().splitlines()[-1] == "Not blessed: refused by " + "; ".join(summary.decided_by)
    assert replay.versions() == [v1, v2]

    # The history: every run, from ML Metadata, and the RMSE plot.
    history = movierec("report", "--pipeline-root", replay.config.pipeline_root, "--last", "10")
    assert history.returncode == 0, history.stderr
    lines = [line for line in history.stdout.splitlines() if line.startswith("20")]
    assert len(lines) == 7
    assert [line for line in lines if "did not finish: its run was killed" in line] == lines[1:3]
    assert (pathlib.Path(report.reports_dir(replay.config)) / report.HISTORY_PLOT).is_file()
