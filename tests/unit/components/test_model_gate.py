"""The one gate that decides: the ModelGate's executor on the verdicts the gates' own judges give,
read back by TFX's own code (`model_utils.is_model_blessed`, what TFX's Pusher checks, and
LatestBlessedModelStrategy, what the "last blessed model" resolver runs), and its place in the
pipeline: every gate in `create_pipeline` feeds it, and its blessing is the only one anything
downstream reads, on every orchestrator."""
import json
import os

import pytest
from tfx.components.util import model_utils
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import standard_artifacts

from components import verdicts
from components.baselines import executor as baselines
from components.model_gate import executor as model_gate
from components.rating_gate import executor as rating
from components.yardstick import executor as yardstick
from pipeline import configs
from pipeline.pipeline import KUBEFLOW_V2, LOCAL, MODEL_GATE, create_pipeline
from tests.metadata_store import MemoryStore


def _verdict_artifacts(tmp_path, **gate_verdicts):
    artifacts = {}
    for name, verdict in gate_verdicts.items():
        artifact = verdicts.GateVerdict()
        artifact.uri = str(tmp_path / name)
        os.makedirs(artifact.uri)
        verdicts.write(artifact, verdict)
        artifacts[name] = [artifact]
    return artifacts


def _decide(tmp_path, **gate_verdicts):
    model = standard_artifacts.Model()
    model.uri, model.id = str(tmp_path / "model"), 7
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    model_gate.Executor().Do({model_gate.MODEL: [model], **_verdict_artifacts(tmp_path, **gate_verdicts)},
                             {model_gate.BLESSING: [blessing]}, {model_gate.GATES: json.dumps(list(gate_verdicts))})
    return blessing, model_gate.load(blessing.uri)


FIRST_RUN = {  # what the gates say with no blessed model yet: the baselines decide
    "rating": rating.judge({"": {"candidate": {"root_mean_squared_error": 0.90, "example_count": 2000.0}}},
                           None, 0.0, None, 1000),
    "yardstick": verdicts.Verdict(yardstick.GATE, [verdicts.info(yardstick.EARLIER, "no earlier accepted data")]),
}


def test_every_gate_passing_blesses_as_tfx_reads_it_and_names_the_closest_call(tmp_path):
    blessing, decision = _decide(tmp_path, **FIRST_RUN,
                                 baselines=baselines.judge(10, 0.44, 0.22, 0.1, 0.90, 0.94, 0.02))
    assert model_utils.is_model_blessed(blessing)
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property("current_model_id") == 7
    assert [v["gate"] for v in decision["gates"]] == ["rating", "yardstick", "baselines"]
    # RMSE is 4.3% under bias-only (2% needed), NDCG 100% over most popular (10% needed).
    assert decision["decided_by"] == ["baselines: RMSE 0.9000 vs bias-only 0.9400: -4.3% (at most -2.0%)"]


def test_one_failed_check_refuses_and_decides_whatever_the_other_gates_say(tmp_path):
    blessing, decision = _decide(tmp_path, **FIRST_RUN,
                                 baselines=baselines.judge(10, 0.20, 0.22, 0.1, 0.90, 0.94, 0.02))
    assert not model_utils.is_model_blessed(blessing)
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert decision["decided_by"] == ["baselines: NDCG@10 0.2000 vs most popular 0.2200: -9.1% (at least +10.0%)"]
    assert [v["passed"] for v in decision["gates"]] == [True, True, False]


def test_several_failures_are_all_named_the_furthest_from_its_limit_first(tmp_path):
    with_baseline = {"": {"candidate": {"root_mean_squared_error": 0.95}, "baseline": {"root_mean_squared_error": 0.93}}}
    _, decision = _decide(tmp_path, rating=rating.judge(with_baseline, None, 0.0, None, 1000),
                          baselines=baselines.judge(10, 0.10, 0.22, 0.1, 0.95, 0.94, 0.02))
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in decision["decided_by"]] == [
        "baselines: NDCG@10 0.1000 vs most popular 0.2200", "baselines: RMSE 0.9500 vs bias-only 0.9400",
        "rating: RMSE 0.9500 vs last blessed 0.9300"]


def test_thresholds_set_to_none_report_but_never_refuse(tmp_path):
    blessing, decision = _decide(tmp_path, baselines=baselines.judge(10, 0.01, 0.22, None, 2.0, 0.94, None))
    assert model_utils.is_model_blessed(blessing) and decision["decided_by"] == []
    assert all(check["note"].endswith("(not gated)") for check in decision["gates"][0]["checks"])


def test_slices_under_the_minimum_size_are_not_gated():
    metrics = {"": {"candidate": {"root_mean_squared_error": 0.90}, "baseline": {"root_mean_squared_error": 0.91}},
               "movie_popularity=0": {"candidate": {"root_mean_squared_error": 1.40, "example_count": 42.0},
                                      "baseline": {"root_mean_squared_error": 1.10}},
               "user_activity=>150": {"candidate": {"root_mean_squared_error": 0.95, "example_count": 9000.0},
                                      "baseline": {"root_mean_squared_error": 0.88}}}
    verdict = rating.judge(metrics, None, 0.0, 0.05, 1000)
    assert [c.name for c in verdict.checks if c.passed is False] == ["RMSE on user_activity=>150 vs last blessed"]
    assert verdict.checks[-1].note == "slices under 1,000 examples not gated: movie_popularity=0 (42)"
    # Below the minimum the noisy slice decides nothing; with no minimum it would refuse too.
    assert [c.name for c in rating.judge(metrics, None, 0.0, 0.05, 1).checks if c.passed is False] == [
        "RMSE on movie_popularity=0 vs last blessed", "RMSE on user_activity=>150 vs last blessed"]


def test_tfx_latest_blessed_model_strategy_finds_the_model_the_gate_blessed(tmp_path):
    store = MemoryStore()
    blessed_model = store.add(standard_artifacts.Model())
    blessing, _ = _decide(tmp_path / "1", **FIRST_RUN, baselines=baselines.judge(10, 0.44, 0.22, 0.1, 0.9, 0.94, 0.02))
    blessing.set_int_custom_property("current_model_id", blessed_model.id)
    store.add(blessing)
    refused_model = store.add(standard_artifacts.Model())
    refusal, _ = _decide(tmp_path / "2", **FIRST_RUN, baselines=baselines.judge(10, 0.1, 0.22, 0.1, 0.9, 0.94, 0.02))
    refusal.set_int_custom_property("current_model_id", refused_model.id)
    store.add(refusal)
    resolved = LatestBlessedModelStrategy().resolve_artifacts(store.mlmd, {
        "model": store.read(standard_artifacts.Model), "model_blessing": store.read(standard_artifacts.ModelBlessing)})
    assert [m.id for m in resolved["model"]] == [blessed_model.id]


@pytest.mark.parametrize("orchestrator", [LOCAL, KUBEFLOW_V2])
def test_every_gate_in_the_pipeline_feeds_the_one_blessing_everything_reads(tmp_path, orchestrator):
    config = configs.PipelineConfig(data=str(tmp_path), pipeline_root=str(tmp_path / "root"),
                                    serving_dir=str(tmp_path / "serving"))
    nodes = {node.id: node for node in create_pipeline(config, orchestrator).components}
    gates = {node.GATE for node in nodes.values() if isinstance(node, verdicts.GateComponent)}
    assert gates == {"rating", "ranking", "baselines", "yardstick"}
    assert set(nodes[MODEL_GATE].inputs) == {model_gate.MODEL} | gates
    blessing = nodes[MODEL_GATE].outputs[model_gate.BLESSING]
    assert nodes["InfraValidator"].inputs["model_blessing"] is blessing
    assert nodes["Pusher"].inputs["model_blessing"] is blessing
    # The only other ModelBlessing is TFMA's, from an eval config with no thresholds: the
    # Evaluator then writes no `blessed` property (tfx/components/evaluator/executor.py,
    # run_validation), so a resolver selecting ModelBlessings by type and `blessed` (Kubeflow v2)
    # can only find the ModelGate's.
    makers = {node_id for node_id, node in nodes.items() for channel in node.outputs.values()
              if channel.type == standard_artifacts.ModelBlessing and not isinstance(node, Resolver)}
    assert makers == {MODEL_GATE, "Evaluator"}
    eval_config = json.loads(nodes["Evaluator"].exec_properties["eval_config"])
    assert "threshold" not in json.dumps(eval_config).lower()
    resolver = nodes["latest_blessed_model_resolver"].raw_inputs["model_blessing"]
    if orchestrator == LOCAL:
        assert (resolver.producer_component_id, resolver.output_key) == (MODEL_GATE, model_gate.BLESSING)
