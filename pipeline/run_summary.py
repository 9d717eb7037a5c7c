"""What the last pipeline run did, read back from ML Metadata and the artifacts it recorded.

Used by `movierec run` and by the Airflow DAG's last task to print a short summary: rows ingested,
eval metrics (and the baseline's), each model gate's verdict, whether the model was blessed and
which check decided, where it was pushed, and the run's outcome as an exit code.

Both ways TFX records runs are read. Its IR-based runners (LocalDagRunner, BeamDagRunner) put a
run's executions in a "pipeline_run" context named by the run id and each node's in a "node"
context; its legacy launcher, which the Airflow DAG runs (tfx/orchestration/metadata.py,
`register_pipeline_contexts_if_not_exists`, `register_execution`), uses a "run" context named
"<pipeline>.<run id>" and records the node as the execution's `component_id` property.
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_data_validation.utils import stats_util
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils
from tfx.types import standard_component_specs as specs

from components import evaluation, infra_blessing, validation_gate
from components.evaluation import RMSE
from components.example_gen import executor as example_gen
from components.infra_validator.executor import BLESSING_KEY as INFRA_BLESSING
from components.model_gate import executor as model_gate
from components.pusher import executor as pusher
from components.ranking_evaluator import executor as ranking_executor
from components.servable_export import executor as servable_export
from models.metrics import ranking
from models.artifacts import HISTORY_FILE, MAP_FILE
from ratings.errors import EXIT_ERROR, EXIT_NOT_BLESSED
from pipeline import configs, metadata
from pipeline.pipeline import MODEL_GATE

EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "ran",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
}
RANKING_RELEVANCE = ((ranking.RELEVANT_ALL, "relevant = eval movies"),
                     (ranking.RELEVANT_LIKED, "relevant = eval movies rated 4-5"))
# Custom property of an execution a killed run left running, set by the next run (recovery.py):
# why it never finished. Such executions are shown as "abandoned".
ABANDONED = "abandoned"
# Custom property of an execution whose Airflow task failed, set by the DAG's failure callback
# (TFX's legacy launcher leaves a failed execution RUNNING): the error in one line, and the exit
# code `movierec run` gives that error (ratings.errors.exit_code: 5 for drift, else 1).
FAILURE, FAILURE_EXIT_CODE = "failure", "failure_exit_code"
# Context types of a run: TFX's IR-based runners', its legacy (Airflow) launcher's.
RUN_CONTEXT, LEGACY_RUN_CONTEXT = "pipeline_run", "run"


@dataclasses.dataclass
class RunSummary:
    run_id: str
    components: Dict[str, str]
    rows: Dict[str, int]
    metrics: Dict[str, float]
    baseline_metrics: Dict[str, float]
    blessed: Optional[bool]
    pushed: Optional[bool]
    push_note: str
    pushed_destination: Optional[str]
    history: Dict[str, List[float]]
    slices: Dict[str, Dict[str, Dict[str, float]]] = dataclasses.field(default_factory=dict)
    model_run_dir: Optional[str] = None
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)
    span: Optional[int] = None
    pushed_version: Optional[str] = None
    error: str = ""
    error_code: int = EXIT_ERROR  # the exit code of `error` (ratings.errors.exit_code)
    # The side tables ExampleGen joined: {"movies": path or None, "users": path or None}.
    side_tables: Dict[str, Optional[str]] = dataclasses.field(default_factory=dict)
    infra_blessed: Optional[bool] = None
    infra_note: str = ""
    # The RankingEvaluator's ranking_metrics.json: {"k", "metrics": {relevance: {model: {slice:
    # {metric: value}}}}}; empty when it did not run.
    ranking_evaluation: Dict = dataclasses.field(default_factory=dict)
    # ExampleGen's Examples artifact, so peers can be scored on the run's own rows (benchmarks/ranking.py).
    examples: Optional[Any] = None
    # The model the gates judged (the Trainer's) and the servable ServableExport wrote from it.
    judged_model: Optional[Any] = None
    servable: Optional[Any] = None
    # The ModelGate's decision: each gate's verdict ({"gate", "passed", "checks": [...]}, in the
    # pipeline's order) and the checks that decided (the failed ones, or the closest call).
    gates: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    decided_by: List[str] = dataclasses.field(default_factory=list)
    # The ValidationGate's comparisons with the last accepted examples (validation_gate.Drift), once
    # it passed: None when it did not pass, [] when there was nothing accepted to compare with.
    drift: Optional[List[validation_gate.Drift]] = None
    drift_baseline_span: Optional[int] = None
    drift_accepted: bool = False

    def drift_line(self) -> str:
        """The drift checks in one line ("" when the gate did not pass)."""
        if self.drift is None:
            return ""
        if not self.drift:
            return "drift: not checked, no earlier examples were accepted (the first run)"
        since = (f"span {self.drift_baseline_span}" if self.drift_baseline_span is not None
                 else "the last accepted examples")
        return (f"drift from {since}: " + "; ".join(map(str, self.drift))
                + (" - ACCEPTED on purpose (--accept-drift)" if self.drift_accepted else ""))

    def ranking_overall(self, model: str = ranking_executor.CANDIDATE,
                        relevance: str = ranking.RELEVANT_ALL) -> Dict[str, float]:
        """A model's overall ranking metrics ({} when not evaluated)."""
        by_model = self.ranking_evaluation.get("metrics", {}).get(relevance, {})
        return by_model.get(model, {}).get(ranking.OVERALL, {})

    def ranking_rows(self, relevance: str = ranking.RELEVANT_ALL) -> List[List[str]]:
        """[model, slice, users, NDCG, recall, precision, MAP, coverage, popularity rank] rows."""
        rows = []
        for model, by_slice in self.ranking_evaluation.get("metrics", {}).get(relevance, {}).items():
            for name, m in by_slice.items():
                rows.append([model, name, str(m["users"])] + [f"{m[key]:.4f}" for key in ranking.METRICS[:5]]
                            + [f"{m['popularity_rank']:.1f}"])
        return rows

    def ratings_used(self) -> List[str]:
        """Which ratings the judged and the pushed model used (models/servable.py's rule), from
        the servable's properties; none when there is no servable (the run stopped before)."""
        servable = self.servable
        if servable is None:
            return []
        number = lambda key: f"{servable.get_int_custom_property(key):,}"
        return [f"  evaluated model: {number(servable_export.JUDGED_RATINGS)} training ratings (its train split); "
                "recommend's history and exclusions: those only",
                f"  servable (what is pushed): the evaluated model's rating weights; recommend's history, exclusions "
                "and head: "
                f"every accepted rating, {number(servable_export.ACCEPTED_RATINGS)} "
                f"({servable.get_string_custom_property(servable_export.ACCEPTED_FROM)}): "
                f"{number(servable_export.SEEN_PAIRS)} user-movie pairs of {number(servable_export.SEEN_USERS)} "
                f"users ({servable.get_int_custom_property(servable_export.SEEN_BYTES) / 1e6:.1f} MB)"]

    def outcome(self) -> Tuple[int, str]:
        """(exit code, the reason in one line): 0 blessed (pushed, or already served, reason "");
        1 the run failed (`error`), 5 it stopped on drift (`error_code`); 3 the run finished but
        nothing was pushed: the model gates did not bless the model (naming the checks that refused
        it), or TF Serving could not serve it. Whatever gates the pipeline has, the ModelGate's
        decision is the one read here."""
        if self.error:
            return self.error_code, f"Error: {self.error}"
        if self.infra_blessed is False and self.blessed is not False:
            return EXIT_NOT_BLESSED, f"Not pushed: TF Serving could not serve the model: {self.infra_note}"
        if self.blessed:
            return 0, ""
        return EXIT_NOT_BLESSED, "Not blessed: " + ("refused by " + "; ".join(self.decided_by) if self.decided_by
                                                  else "no verdict recorded")

    def render(self) -> str:
        lines = [f"Run {self.run_id}"]
        lines.append("  components: " + ", ".join(f"{name} {state}"
                                                  for name, state in self.components.items()))
        if self.rows:
            lines.append("  rows ingested: " + ", ".join(
                f"{split} {count:,}" for split, count in self.rows.items())
                + f" (total {sum(self.rows.values()):,})")
        if self.drift_line():
            lines.append(f"  {self.drift_line()}")
        if self.side_tables:
            lines.append("  side tables joined: " + ", ".join(
                f"{name} {path or 'none'}" for name, path in self.side_tables.items()))
        for key, label in (("rmse", "train RMSE per epoch"), ("val_rmse", "eval RMSE per epoch")):
            if self.history.get(key):
                lines.append(f"  {label}: " + " ".join(f"{v:.3f}" for v in self.history[key]))
        if self.model_run_dir:
            lines.append(f"  training logs, embedding projector and map: {self.model_run_dir} "
                         f"(tensorboard --logdir ...; {MAP_FILE})")
        if self.metrics:
            shown = ", ".join(f"{name} {value:.4f}" for name, value in self.metrics.items()
                              if name != "example_count")
            lines.append(f"  eval: {shown} on {int(self.metrics.get('example_count', 0)):,} examples")
        if self.baseline_metrics:
            lines.append("  baseline (last blessed model): " + ", ".join(
                f"{name} {value:.4f}" for name, value in self.baseline_metrics.items()
                if name != "example_count"))
        if self.slices:
            lines.append("  RMSE by slice:")
            for name, models in sorted(self.slices.items()):
                candidate, baseline = models.get(evaluation.CANDIDATE, {}), models.get(evaluation.BASELINE, {})
                line = (f"    {name}: {candidate.get(RMSE, float('nan')):.4f} on "
                        f"{int(candidate.get('example_count', 0)):,} examples")
                lines.append(line + (f" (last blessed {baseline[RMSE]:.4f})" if RMSE in baseline else ""))
        if self.ranking_evaluation:
            k = self.ranking_evaluation["k"]
            for relevance, label in RANKING_RELEVANCE:
                models = self.ranking_evaluation["metrics"].get(relevance, {})
                for model, by_slice in models.items():
                    m = by_slice[ranking.OVERALL]
                    lines.append(f"  ranking top-{k}, {label}, {model}: NDCG {m['ndcg']:.4f}, recall "
                                 f"{m['recall']:.4f}, precision {m['precision']:.4f}, MAP {m['map']:.4f}, "
                                 f"coverage {m['coverage']:.3f}, popularity rank {m['popularity_rank']:.1f} "
                                 f"({m['users']:,} users)")
            candidate = self.ranking_evaluation["metrics"].get(ranking.RELEVANT_ALL, {}).get(
                ranking_executor.CANDIDATE, {})
            slices = {name: m for name, m in candidate.items() if name != ranking.OVERALL}
            if slices:
                lines.append(f"  NDCG@{k} by slice: " + ", ".join(
                    f"{name} {m['ndcg']:.4f} ({m['users']:,} users)" for name, m in slices.items()))
        if self.gates:
            lines.append("  gates:")
            for verdict in self.gates:
                lines.append(f"    {verdict['gate']}: {'passed' if verdict['passed'] else 'refused'} - "
                             + "; ".join(check["note"] for check in verdict["checks"]))
        lines += self.ratings_used()
        if self.blessed is not None:
            lines.append(f"  blessed: {'yes' if self.blessed else 'no'}" + (
                f" - {'closest call' if self.blessed else 'refused by'} {'; '.join(self.decided_by)}"
                if self.decided_by else ""))
        if self.infra_blessed is not None:
            lines.append(f"  infra validation: {'passed' if self.infra_blessed else 'failed'} - {self.infra_note}")
        if self.pushed is not None:
            lines.append(f"  push: {self.push_note}"
                         + (f" ({self.pushed_destination})" if self.pushed_destination else ""))
        return "\n".join(lines)


def run_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> List[str]:
    """The ids of the runs that hold executions of this pipeline, oldest first."""
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        return []
    ours = {e.id for e in store.get_executions_by_context(pipeline_context.id)}
    runs = sorted(store.get_contexts_by_type(RUN_CONTEXT) + store.get_contexts_by_type(LEGACY_RUN_CONTEXT),
                  key=lambda c: (c.create_time_since_epoch, c.id))
    return [run.name.removeprefix(f"{pipeline_name}.") if run.type == LEGACY_RUN_CONTEXT else run.name
            for run in runs if any(e.id in ours for e in store.get_executions_by_context(run.id))]


def run_context(store: metadata_store.MetadataStore, pipeline_name: str, run_id: str):
    """A run's context: TFX's `pipeline_run` (local, Beam) or the Airflow launcher's `run`."""
    return (store.get_context_by_type_and_name(RUN_CONTEXT, run_id)
            or store.get_context_by_type_and_name(LEGACY_RUN_CONTEXT, f"{pipeline_name}.{run_id}"))


def _execution_context(store: metadata_store.MetadataStore, execution_id: int,
                       context_type: str) -> Optional[str]:
    return next((context.name for context in store.get_contexts_by_execution(execution_id)
                 if context.type == context_type), None)


def _legacy_property(store: metadata_store.MetadataStore, execution_id: int, name: str) -> str:
    (execution,) = store.get_executions_by_id([execution_id])
    return execution.properties[name].string_value if name in execution.properties else ""


def node_name(store: metadata_store.MetadataStore, execution_id: int) -> str:
    """The component an execution belongs to ("Transform")."""
    name = _execution_context(store, execution_id, "node")
    if name:
        return name.split(".", 1)[-1]
    return _legacy_property(store, execution_id, "component_id") or str(execution_id)


def run_of(store: metadata_store.MetadataStore, execution_id: int) -> Optional[str]:
    """The id of the run an execution belongs to."""
    return (_execution_context(store, execution_id, RUN_CONTEXT)
            or _legacy_property(store, execution_id, "run_id") or None)


def _state(execution: metadata_store_pb2.Execution) -> str:
    if ABANDONED in execution.custom_properties:
        return ABANDONED
    return EXECUTION_STATES.get(execution.last_known_state, "unknown")


def _outputs(store: metadata_store.MetadataStore, execution_id: int):
    """Output artifacts of an execution as tfx Artifacts, by output key."""
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    by_id = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    types = {t.id: t for t in store.get_artifact_types_by_id({a.type_id for a in by_id.values()})}
    outputs = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        artifact = by_id[event.artifact_id]
        outputs[key] = artifact_utils.deserialize_artifact(types[artifact.type_id], artifact)
    return outputs


def _rows(statistics) -> Dict[str, int]:
    rows = {}
    for split in artifact_utils.decode_split_names(statistics.split_names):
        path = os.path.join(artifact_utils.get_split_uri([statistics], split), "FeatureStats.pb")
        stats = stats_util.load_stats_binary(path)
        rows[split] = int(stats.datasets[0].num_examples)
    return rows


def _history(model_run) -> Dict[str, List[float]]:
    path = os.path.join(model_run.uri, HISTORY_FILE)
    if not fileio.exists(path):
        return {}
    with fileio.open(path) as f:
        return json.load(f)


def summarize(config: configs.PipelineConfig, run_id: Optional[str] = None) -> Optional[RunSummary]:
    """Summary of run `run_id` (default: the latest) of the configured pipeline."""
    if not metadata.exists(config):
        return None
    store = metadata.connect(config)
    run_id = run_id or (run_ids(store, config.pipeline_name) or [None])[-1]
    run = run_context(store, config.pipeline_name, run_id) if run_id else None
    if run is None:
        return None
    summary = RunSummary(run_id, {}, {}, {}, {}, None, None, "", None, {})
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = node_name(store, execution.id)
        summary.components[node] = _state(execution)
        for reason in (ABANDONED, FAILURE):
            if reason in execution.custom_properties:
                summary.error = execution.custom_properties[reason].string_value
        if FAILURE_EXIT_CODE in execution.custom_properties:
            summary.error_code = execution.custom_properties[FAILURE_EXIT_CODE].int_value
        summary.seconds[node] = (execution.last_update_time_since_epoch
                                 - execution.create_time_since_epoch) / 1000
        outputs = _outputs(store, execution.id)
        if specs.STATISTICS_KEY in outputs and node == "StatisticsGen":
            summary.rows = _rows(outputs[specs.STATISTICS_KEY])
        if specs.EXAMPLES_KEY in outputs and node == "RatingsExampleGen":
            # ExampleGen records the span as a custom property.
            summary.examples = outputs[specs.EXAMPLES_KEY]
            summary.span = summary.examples.get_int_custom_property("span")
            joined = summary.examples.get_string_custom_property(example_gen.SIDE_TABLES_PROPERTY)
            summary.side_tables = json.loads(joined) if joined else {}
        if specs.MODEL_KEY in outputs and node == "Trainer":
            summary.judged_model = outputs[specs.MODEL_KEY]
        if servable_export.SERVABLE in outputs:
            summary.servable = outputs[servable_export.SERVABLE]
        if validation_gate.ACCEPTED_STATISTICS in outputs:
            accepted = outputs[validation_gate.ACCEPTED_STATISTICS]
            summary.drift = [validation_gate.Drift(**d) for d in
                             json.loads(accepted.get_string_custom_property(validation_gate.DRIFT) or "[]")]
            summary.drift_accepted = bool(accepted.get_int_custom_property(validation_gate.DRIFT_ACCEPTED))
            if validation_gate.BASELINE_SPAN in accepted.mlmd_artifact.custom_properties:
                summary.drift_baseline_span = accepted.get_int_custom_property(validation_gate.BASELINE_SPAN)
        if specs.MODEL_RUN_KEY in outputs:
            summary.history = _history(outputs[specs.MODEL_RUN_KEY])
            summary.model_run_dir = outputs[specs.MODEL_RUN_KEY].uri
        if specs.EVALUATION_KEY in outputs:
            by_slice = evaluation.load(outputs[specs.EVALUATION_KEY].uri)
            overall = by_slice.pop(evaluation.OVERALL, {})
            summary.metrics = overall.get(evaluation.CANDIDATE, {})
            summary.baseline_metrics = overall.get(evaluation.BASELINE, {})
            summary.slices = by_slice
        if INFRA_BLESSING in outputs and outputs[INFRA_BLESSING].type_name == "InfraBlessing":
            summary.infra_blessed = bool(outputs[INFRA_BLESSING].get_int_custom_property(infra_blessing.BLESSED))
            summary.infra_note = infra_blessing.note(outputs[INFRA_BLESSING])
        # Only the ModelGate's own: under TFX's Airflow launcher the "last blessed model" resolvers
        # record the earlier blessing they hand on as their output under the same key.
        if model_gate.BLESSING in outputs and node == MODEL_GATE:
            decision = model_gate.load(outputs[model_gate.BLESSING].uri)
            summary.blessed, summary.gates, summary.decided_by = (
                decision["blessed"], decision["gates"], decision["decided_by"])
        if ranking_executor.RANKING in outputs and fileio.exists(
                os.path.join(outputs[ranking_executor.RANKING].uri, ranking_executor.METRICS_FILE)):
            summary.ranking_evaluation = ranking_executor.load_metrics(outputs[ranking_executor.RANKING].uri)
        if specs.PUSHED_MODEL_KEY in outputs:
            pushed = outputs[specs.PUSHED_MODEL_KEY]
            summary.pushed = bool(pushed.get_int_custom_property(pusher.PUSHED))
            summary.push_note = pushed.get_string_custom_property(pusher.PUSH_NOTE)
            summary.pushed_destination = (
                pushed.get_string_custom_property(pusher.PUSHED_DESTINATION) or None)
            summary.pushed_version = pushed.get_string_custom_property(pusher.PUSHED_VERSION) or None
            if summary.components[node] == "cached" and summary.blessed and summary.infra_blessed:
                summary.pushed, summary.pushed_destination, summary.pushed_version = False, None, None
                summary.push_note = _nothing_new(store, config, pushed, summary.servable)
    return summary


def _nothing_new(store: metadata_store.MetadataStore, config: configs.PipelineConfig, pushed_model,
                 servable) -> str:
    """The push line of a run whose Pusher was cached (a rerun with nothing new): which run
    pushed, and whether its model is still served (an operator may have removed the version)."""
    first = min(e.execution_id for e in store.get_events_by_artifact_ids([pushed_model.id])
                if e.type == metadata_store_pb2.Event.OUTPUT)
    version = None if servable is None else pusher.version_serving(
        config.push_base, path_utils.serving_model_path(servable.uri, path_utils.is_old_model_artifact(servable)))
    served = (f"whose model is served as version {version}" if version is not None
              else f"whose model is no longer served from {config.push_base}")
    return f"not pushed: nothing new since run {run_of(store, first)}, {served}"
