"""The movierec TFX pipeline, as a pure function of its config: the README's diagram in code.

RatingsExampleGen -> StatisticsGen / ImportSchemaGen -> ExampleValidator -> ValidationGate (schema,
and drift from the last accepted span) -> Transform -> Trainer -> Evaluator (TFMA: RMSE per slice)
-> the model gates (rating, ranking, baselines, yardstick) -> ModelGate (the one blessing)
-> ServableExport (the judged model with every accepted rating) -> InfraValidator -> AtomicPusher
"""
import dataclasses
import json
import pathlib
from typing import Any, Dict

import tensorflow_model_analysis as tfma
# Not tfx.v1, whose extensions import the Google Cloud clients: seconds on every `movierec run`.
from tfx.components import Evaluator, ExampleValidator, StatisticsGen, Trainer, Transform
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.dsl.input_resolution.strategies.span_range_strategy import SpanRangeStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types import standard_component_specs as specs
from ratings import schema
from components import code_version, resolvers, validation_gate as gate
from components.example_gen.component import RatingsExampleGen
from components.infra_validator.component import InfraValidator
from components.infra_validator.executor import BLESSING_KEY as INFRA_BLESSING
from components.pusher.component import AtomicPusher
from components.baselines.component import Baselines
from components.evaluation import MAE, RMSE
from components.model_gate import executor as model_gate
from components.model_gate.component import ModelGate
from components.ranking_evaluator.component import RankingEvaluator
from components.ranking_evaluator.executor import RANKING
from components.rating_gate.component import RatingGate
from components.servable_export.component import ServableExport
from components.servable_export.executor import SERVABLE
from components.schema_import import SchemaImport
from components.yardstick.component import Yardstick
from models.features import SLICE_FEATURES
from models.hyperparameters import HYPERPARAMETERS
from ratings import paths
from ratings import features
from pipeline import configs, metadata
from serving import contract

LOCAL, KUBEFLOW_V2 = "local", "kubeflow-v2"
MODEL_GATE = "ModelGate"
SERVABLE_EXPORT = "ServableExport"
VALIDATION_GATE = "ValidationGate"
LAST_ACCEPTED_STATISTICS = "last_accepted_statistics"


def _blessings(orchestrator: str) -> Channel:
    """The blessings that say a model was blessed: the ModelGate's. Kubeflow v2's resolvers take
    artifact types only; there the ModelGate's is still the only ModelBlessing that carries
    `blessed` (TFMA's Evaluator has no thresholds, so its blessing has none; the gates before the
    ModelGate write GateVerdicts), so selecting the type selects it."""
    if orchestrator == KUBEFLOW_V2:
        return Channel(type=standard_artifacts.ModelBlessing)
    return Channel(type=standard_artifacts.ModelBlessing,
                           producer_component_id=MODEL_GATE, output_key=model_gate.BLESSING)


def eval_config() -> tfma.EvalConfig:
    """RMSE, MAE and the example count, overall and per activity slice, for the candidate and (when
    there is one) the last blessed model. No thresholds: the rating gate judges these figures
    (components/rating_gate), so the ModelGate's blessing is the only one (see _blessings)."""
    slices = [tfma.SlicingSpec(feature_keys=[key]) for key in SLICE_FEATURES]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=contract.SERVING_DEFAULT,
            label_key=features.LABEL_KEY,
            prediction_key=features.LABEL_KEY,
            preprocessing_function_names=[contract.TRANSFORM_FEATURES])],
        slicing_specs=[tfma.SlicingSpec(), *slices],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MeanAbsoluteError", config='"name": "%s"' % MAE),
            tfma.MetricConfig(class_name="RootMeanSquaredError", config='"name": "%s"' % RMSE),
        ])])


def drift_comparators(drift: configs.DriftConfig) -> Dict[str, Any]:
    """The settings as TFDV's comparators (tensorflow_metadata FeatureComparator and
    NumericValueComparator, as JSON), for the ValidationGate to set in the schema."""
    by_feature = {}
    if drift.rating_jsd is not None:
        by_feature[features.RATING] = {"jensen_shannon_divergence": {"threshold": drift.rating_jsd}}
    if drift.user_id_linf is not None:
        by_feature[features.USER_ID] = {"infinity_norm": {"threshold": drift.user_id_linf}}
    num_examples = {key: value for key, value in (("min_fraction_threshold", drift.min_examples_ratio),
                                                  ("max_fraction_threshold", drift.max_examples_ratio))
                    if value is not None}
    return {gate.FEATURES: by_feature, gate.NUM_EXAMPLES: num_examples}


def _validation_gate(config: configs.PipelineConfig, examples, statistics, schema_channel, anomalies,
                     orchestrator: str):
    """(baseline resolver or None, ValidationGate): the schema check, then drift from the last
    accepted examples. Kubeflow v2's resolvers select by artifact type only, and cannot tell the
    statistics the gate accepted from any other: there the gate has no baseline and checks the
    schema only."""
    baseline = None
    drift = {}
    if orchestrator != KUBEFLOW_V2:
        baseline = Resolver(
            strategy_class=resolvers.LastAcceptedStatisticsStrategy,
            statistics=Channel(type=standard_artifacts.ExampleStatistics,
                                       producer_component_id=VALIDATION_GATE, output_key=gate.ACCEPTED_STATISTICS),
            examples=examples).with_id(LAST_ACCEPTED_STATISTICS)
        drift = {gate.BASELINE_STATISTICS: baseline.outputs["statistics"]}
    validation_gate = gate.ValidationGate(
        examples=examples, anomalies=anomalies, statistics=statistics, schema=schema_channel,
        drift_comparators=json.dumps(drift_comparators(config.drift), sort_keys=True),
        accept_drift=int(config.drift.accept), **drift).with_id(VALIDATION_GATE)
    return baseline, validation_gate


def _carried_over(config: configs.PipelineConfig, validation_gate, orchestrator: str):
    """(training examples, accepted examples, {name: resolver}): what a run takes over from
    earlier runs.

    Locally (and on Airflow): the rolling window of validated spans, and the analyzer cache and
    warm-start model chosen so that a rerun on unchanged data is fully cached (resolvers.py), and
    every span ever validated, which the pushed servable knows (components/servable_export).
    Kubeflow v2 accepts only TFX's latest-artifact and latest-blessed-model resolvers there: it
    trains on the newest validated span, with the latest cache and latest blessed model, and its
    servable knows that span's ratings (every split), not older spans'.
    """
    training_examples = accepted_examples = validation_gate.outputs[gate.VALIDATED_EXAMPLES]
    channel = lambda artifact_type: Channel(type=artifact_type)
    if orchestrator == KUBEFLOW_V2:
        resolvers_by_name = {
            "analyzer_cache": Resolver(
                strategy_class=LatestArtifactStrategy,
                cache=channel(standard_artifacts.TransformCache)),
            "base_model": Resolver(
                strategy_class=LatestBlessedModelStrategy,
                model=channel(standard_artifacts.Model),
                model_blessing=channel(standard_artifacts.ModelBlessing)),
        }
    else:
        # Channels named by producer are resolved from ML Metadata, not wired: each resolver is
        # ordered after the gate explicitly, so it sees this run's newly validated examples.
        validated_channel = lambda: Channel(
            type=standard_artifacts.Examples, producer_component_id=validation_gate.id,
            output_key=gate.VALIDATED_EXAMPLES)
        resolvers_by_name = {
            "analyzer_cache": Resolver(
                strategy_class=resolvers.AnalyzerCacheStrategy,
                cache=channel(standard_artifacts.TransformCache), examples=validated_channel()),
            "base_model": Resolver(
                strategy_class=resolvers.WarmStartModelStrategy,
                model=channel(standard_artifacts.Model),
                model_blessing=_blessings(orchestrator),
                examples=validated_channel()),
            "accepted_examples": Resolver(
                strategy_class=resolvers.AcceptedExamplesStrategy, examples=validated_channel()),
        }
        accepted_examples = resolvers_by_name["accepted_examples"].outputs["examples"]
        if config.uses_spans():
            resolvers_by_name["span_window"] = Resolver(
                strategy_class=SpanRangeStrategy,
                config={"range_config": range_config_pb2.RangeConfig(
                    rolling_range=range_config_pb2.RollingRange(num_spans=config.rolling_spans))},
                examples=validated_channel())
            training_examples = resolvers_by_name["span_window"].outputs["examples"]
        for resolver in resolvers_by_name.values():
            resolver.add_upstream_node(validation_gate)
    ids = {"analyzer_cache": "transform_analyzer_cache", "base_model": "warm_start_model",
           "span_window": "rolling_span_window", "accepted_examples": "accepted_examples"}
    return training_examples, accepted_examples, {name: r.with_id(ids[name]) for name, r in resolvers_by_name.items()}


def _last_blessed_model(trainer, orchestrator: str) -> Resolver:
    """The gates' baseline: the newest blessed model other than the Trainer's candidate, so a
    rerun whose Trainer is cached is not compared with itself and its gates are cached too
    (resolvers.LastBlessedModelStrategy). Kubeflow v2 takes TFX's own strategy only."""
    model = Channel(type=standard_artifacts.Model)
    if orchestrator == KUBEFLOW_V2:
        resolver = Resolver(strategy_class=LatestBlessedModelStrategy,
                                    model=model, model_blessing=_blessings(orchestrator))
    else:
        resolver = Resolver(strategy_class=resolvers.LastBlessedModelStrategy, model=model,
                                    model_blessing=_blessings(orchestrator),
                                    **{resolvers.CANDIDATE: trainer.outputs[specs.MODEL_KEY]})
    # Keeps its ID from TFX's strategy, so run histories of existing pipeline roots carry on.
    return resolver.with_id("latest_blessed_model_resolver")


def _schema_import(config: configs.PipelineConfig, orchestrator: str) -> SchemaImport:
    """The curated schema; container runs read the image's copy unless the config names a remote one."""
    local = f"{config.schema_dir}/{configs.SCHEMA_FILE}"
    in_image = orchestrator == KUBEFLOW_V2 and not configs.is_remote(config.schema_dir)
    schema_file = f"{configs.IMAGE_SCHEMA_DIR}/{configs.SCHEMA_FILE}" if in_image else local
    return SchemaImport(schema_file, content_of=local).with_id("ImportSchemaGen")


def _rating_range(config: configs.PipelineConfig):
    """The schema's rating range, enforced row by row at ingestion (a remote schema dir holds
    the same schema this package ships)."""
    local = None if configs.is_remote(config.schema_dir) else pathlib.Path(config.schema_dir, configs.SCHEMA_FILE)
    return schema.float_range(features.RATING, local or schema.SCHEMA_FILE)


def create_pipeline(config: configs.PipelineConfig, orchestrator: str = LOCAL) -> Pipeline:
    """Builds the pipeline; every path and setting comes from `config`.

    `orchestrator` is LOCAL for LocalDagRunner, BeamDagRunner and Airflow, KUBEFLOW_V2 for
    Kubeflow Pipelines v2 / Vertex (which supports fewer resolver strategies).
    """
    paths.register_filesystems(*config.uris())
    input_base, patterns = config.input_location()
    movies, users = config.side_tables()
    code_digest = code_version.digest()
    hash_split = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=config.train_buckets),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=config.eval_buckets)]))
    example_gen = RatingsExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern)
                                             for name, pattern in patterns.items()]),
        # Given train/eval folders are kept as they are; a single input is hash-split.
        output_config=hash_split if configs.SINGLE_SPLIT in patterns else None,
        movies=movies, users=users,
        rating_range=_rating_range(config), code_digest=code_digest)
    examples = example_gen.outputs[specs.EXAMPLES_KEY]

    statistics_gen = StatisticsGen(examples=examples)
    schema_gen = _schema_import(config, orchestrator)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs[specs.STATISTICS_KEY], schema=schema_gen.outputs[specs.SCHEMA_KEY])
    baseline_statistics, validation_gate = _validation_gate(
        config, examples, statistics_gen.outputs[specs.STATISTICS_KEY], schema_gen.outputs[specs.SCHEMA_KEY],
        example_validator.outputs[specs.ANOMALIES_KEY], orchestrator)
    validated = validation_gate.outputs[gate.VALIDATED_EXAMPLES]
    training_examples, accepted_examples, carried_over = _carried_over(config, validation_gate, orchestrator)

    transform = Transform(
        examples=training_examples, schema=schema_gen.outputs[specs.SCHEMA_KEY],
        analyzer_cache=carried_over["analyzer_cache"].outputs["cache"],
        preprocessing_fn=configs.PREPROCESSING_FN,
        # Pre- and post-transform statistics would run TFDV twice more over the data; StatisticsGen
        # and ExampleValidator already check the raw examples and nothing reads the transformed stats.
        disable_statistics=True,
        # Only the analysis runs in Beam; the Trainer applies the transform graph in tf.data, which
        # is several times faster than Beam's per-element materialization of every split.
        materialize=False,
        custom_config={"user_activity_bounds": list(config.evaluation.user_activity_bounds),
                       "movie_popularity_bounds": list(config.evaluation.movie_popularity_bounds),
                       code_version.KEY: code_digest})

    hyperparameters = dataclasses.asdict(config.hyperparameters)
    trainer = Trainer(
        run_fn=configs.RUN_FN,
        examples=training_examples,
        transform_graph=transform.outputs[specs.TRANSFORM_GRAPH_KEY],
        schema=schema_gen.outputs[specs.SCHEMA_KEY],
        base_model=carried_over["base_model"].outputs["model"],
        custom_config={HYPERPARAMETERS: hyperparameters, code_version.KEY: code_digest})

    latest_blessed_model = _last_blessed_model(trainer, orchestrator)

    model, last_blessed = trainer.outputs[specs.MODEL_KEY], latest_blessed_model.outputs["model"]
    evaluator = Evaluator(examples=validated, model=model, baseline_model=last_blessed,
                                         eval_config=eval_config())
    evaluation = config.evaluation
    ranking_evaluator = RankingEvaluator(
        training_examples=training_examples, model=model, baseline_model=last_blessed,
        k=evaluation.ranking_k, ndcg_lower_bound=evaluation.ndcg_lower_bound,
        max_relative_ndcg_decrease=evaluation.max_relative_ndcg_decrease,
        user_activity_bounds=evaluation.user_activity_bounds, code_digest=code_digest)
    # The model gates: each gives a verdict, the ModelGate blesses when all pass. A new gate is
    # one GateComponent (components/verdicts.py) and one line here.
    gates = [
        RatingGate(evaluator.outputs[specs.EVALUATION_KEY], evaluation.rmse_upper_bound, evaluation.max_rmse_increase,
                   evaluation.max_slice_rmse_increase, evaluation.min_slice_examples, code_digest),
        ranking_evaluator,
        Baselines(training_examples, evaluator.outputs[specs.EVALUATION_KEY], ranking_evaluator.outputs[RANKING],
                  evaluation.ndcg_margin_over_popular, evaluation.rmse_margin_over_bias_only, code_digest),
        Yardstick(training_examples, model, last_blessed, evaluation.ranking_k,
                  evaluation.yardstick_max_relative_rmse_increase, evaluation.yardstick_max_relative_ndcg_decrease,
                  code_digest),
    ]
    decision = ModelGate(model, gates).with_id(MODEL_GATE)
    blessing = decision.outputs[model_gate.BLESSING]

    # What is pushed: the judged model with recommend's tables over every accepted rating
    # (models/servable.py states the rule), built once the blessing is decided; it does not read
    # the blessing, so a rerun whose gates ran again finds it cached (servable_export/executor.py).
    servable_export = ServableExport(
        model=model, transform_graph=transform.outputs[specs.TRANSFORM_GRAPH_KEY],
        examples=accepted_examples, hyperparameters=json.dumps(hyperparameters),
        code_digest=code_digest).with_id(SERVABLE_EXPORT)
    servable_export.add_upstream_node(decision)
    servable = servable_export.outputs[SERVABLE]
    # Between the gates and the Pusher: the servable served as production serves it (TFX's InfraValidator role).
    infra_validator = InfraValidator(model=servable, model_blessing=blessing,
                                     model_name=config.model_name, model_server=config.model_server)
    # Keeps TFX's node ID, so run histories and caches of existing pipeline roots carry on.
    pusher = AtomicPusher(servable, blessing, infra_validator.outputs[INFRA_BLESSING], config.push_base).with_id("Pusher")

    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator,
                    *([baseline_statistics] if baseline_statistics else []), validation_gate,
                    *carried_over.values(), transform, trainer, latest_blessed_model, evaluator,
                    *gates, decision, servable_export, infra_validator, pusher],
        enable_cache=config.enable_cache,
        # Kubeflow Pipelines / Vertex keep their own ML Metadata: no settings (or password) needed,
        # and a remote pipeline root has no local SQLite file to name.
        metadata_connection_config=None if orchestrator == KUBEFLOW_V2 else metadata.connection_config(config),
        beam_pipeline_args=list(config.beam_pipeline_args))
