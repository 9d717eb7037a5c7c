"""Spans that keep to the schema but are wrong, through `movierec run`: refused before training.

The tests' 3,000 MovieLens ratings cut by month; span 1 is accepted and pushed, then a span whose
rating column an upstream bug defaulted to one value, and a span on another star scale (ratings
halved), each stopped at the ValidationGate by TFDV's drift comparators with exit code 5, nothing
trained or pushed; then the rescaled span taken on purpose with --accept-drift, which makes it the
baseline of the next span.
"""
import pathlib

from ratings.errors import EXIT_DRIFT
from pipeline import metadata, report, run_summary
from tests.cli import movierec
from tests.pipeline_runs import Replay

NOT_REACHED = ("Transform", "Trainer", "Evaluator", "RatingGate", "RankingEvaluator", "Baselines", "Yardstick",
               "ModelGate", "InfraValidator", "Pusher")


def test_broken_spans_are_refused_before_training_and_accept_drift_takes_one(accepted_span_1, spans, tmp_path):
    replay = Replay(tmp_path, spans, start=accepted_span_1)  # span 1 run and pushed
    first = accepted_span_1.result
    assert first.returncode == 0, first.stderr[-3000:]
    assert "drift: not checked, no earlier examples were accepted (the first run)" in first.stdout
    served = replay.versions()
    assert len(served) == 1

    # Span 2's rating column defaulted to 3 stars by an upstream bug: schema-valid, refused.
    replay.add_span(2, rating=lambda rating: 3)
    defaulted = replay.run()
    assert defaulted.returncode == EXIT_DRIFT, defaulted.stderr[-3000:]
    last_line = defaulted.stderr.strip().splitlines()[-2]  # then "(full log: ...)"
    assert last_line == ("Error: data drift from span 1, the last accepted: feature 'rating': Jensen-Shannon "
                         "divergence 1.0000, above the threshold 0.15 "
                         "(movierec run --accept-drift takes it on purpose)")
    states = replay.summary().components
    assert states["ValidationGate"] == "failed" and not set(NOT_REACHED) & set(states)
    assert replay.versions() == served

    # Span 3 on another star scale (halved): compared with span 1 still, refused.
    replay.add_span(3, rating=lambda rating: rating / 2)
    halved = replay.run()
    assert halved.returncode == EXIT_DRIFT, halved.stderr[-3000:]
    assert ("data drift from span 1, the last accepted: feature 'rating': Jensen-Shannon divergence 0."
            in halved.stderr and ", above the threshold 0.15" in halved.stderr)
    states = replay.summary().components
    assert states["ValidationGate"] == "failed" and not set(NOT_REACHED) & set(states)
    assert replay.versions() == served

    # A real change of scale, taken on purpose: trained on (with span 1, never span 2), and recorded.
    accepted = movierec(*replay.command(), "--accept-drift")
    assert accepted.returncode in (0, 3), accepted.stderr[-3000:]  # whether it is blessed is the model gates' call
    summary = replay.summary()
    assert summary.span == 3 and summary.components["Trainer"] == "ran"
    assert summary.drift_accepted and summary.drift_baseline_span == 1
    assert "drift from span 1: feature 'rating': Jensen-Shannon divergence 0." in accepted.stdout
    assert "ACCEPTED on purpose (--accept-drift)" in accepted.stdout
    report_html = (pathlib.Path(report.reports_dir(replay.config)) / summary.run_id.replace(":", "-")
                   / "report.html").read_text()
    assert "ACCEPTED on purpose (--accept-drift)" in report_html
    store = metadata.connect(replay.config)
    [gate] = [e for e in store.get_executions_by_context(store.get_context_by_type_and_name(
        "pipeline_run", summary.run_id).id) if run_summary.node_name(store, e.id) == "ValidationGate"]
    assert gate.custom_properties["accept_drift"].int_value == 1
    transform = max((e for e in store.get_executions() if run_summary.node_name(store, e.id) == "Transform"),
                    key=lambda e: e.id)
    trained_on = [a for a in store.get_artifacts_by_id([
        e.artifact_id for e in store.get_events_by_execution_ids([transform.id]) if e.type == e.INPUT])
        if "validated_examples" in a.uri]
    assert sorted(a.custom_properties["span"].int_value for a in trained_on) == [1, 3]


    # The accepted span is the next run's baseline: span 4, back on the old scale, is a change from
    # it. (Through BeamDagRunner this time: its executor errors arrive wrapped, the exit code holds.)
    replay.add_span(4)
    back = movierec(*replay.command(), "--runner", "beam")
    assert back.returncode == EXIT_DRIFT, back.stderr[-3000:]
    assert ("Error: data drift from span 3, the last accepted: feature 'rating': Jensen-Shannon divergence"
            in back.stderr)
