"""The movierec TFX pipeline, as a pure function of its config.

ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate -> Transform
-> Trainer -> (latest blessed model) -> Evaluator -> Pusher
"""
import dataclasses

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components import example_gen, features, pusher
from components.validation_gate import ValidationGate
from pipeline import configs

RMSE = "root_mean_squared_error"
MAE = "mean_absolute_error"
# Change thresholds compare with a tolerance; this one only absorbs float rounding.
RMSE_TOLERANCE = 1e-10


def _rmse_change(max_increase: float) -> tfma.GenericChangeThreshold:
    return tfma.GenericChangeThreshold(direction=tfma.MetricDirection.LOWER_IS_BETTER,
                                       absolute={"value": max_increase + RMSE_TOLERANCE})


def eval_config(evaluation: configs.EvaluationConfig) -> tfma.EvalConfig:
    """RMSE, MAE and example count, overall and per activity slice; RMSE gates the blessing.

    Thresholds are per slice: `MetricConfig.threshold` would apply the overall bound to every slice.
    """
    slices = [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURES]
    thresholds = [tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(upper_bound={"value": evaluation.rmse_upper_bound}),
            change_threshold=_rmse_change(evaluation.max_rmse_increase)))]
    if evaluation.max_slice_rmse_increase is not None:
        thresholds.append(tfma.PerSliceMetricThreshold(
            slicing_specs=slices,
            threshold=tfma.MetricThreshold(change_threshold=_rmse_change(evaluation.max_slice_rmse_increase))))
    rmse = tfma.MetricConfig(class_name="RootMeanSquaredError", config='"name": "%s"' % RMSE,
                             per_slice_thresholds=thresholds)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=features.LABEL_KEY,
            prediction_key=features.LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec(), *slices],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MeanAbsoluteError", config='"name": "%s"' % MAE),
            rmse,
        ])])


def create_pipeline(config: configs.PipelineConfig) -> tfx.dsl.Pipeline:
    """Builds the pipeline; every path and setting comes from `config`."""
    input_base, patterns = config.input_location()
    hash_split = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.train_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.eval_buckets)]))
    example_gen_component = FileBasedExampleGen(
        input_base=input_base,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=name, pattern=pattern)
                                             for name, pattern in patterns.items()]),
        # Given train/eval folders are kept as they are; a single input is hash-split.
        output_config=hash_split if configs.SINGLE_SPLIT in patterns else None,
        custom_config=example_gen.side_table_config(*config.side_tables()),
        custom_executor_spec=executor_spec.BeamExecutorSpec(example_gen.Executor))
    examples = example_gen_component.outputs["examples"]

    statistics_gen = tfx.components.StatisticsGen(examples=examples)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=f"{config.schema_dir}/schema.pbtxt")
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    validation_gate = ValidationGate(examples=examples, anomalies=example_validator.outputs["anomalies"])
    validated = validation_gate.outputs["validated_examples"]
    training_examples, span_window = validated, []
    if config.uses_spans():
        span_window = [tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
            config={"range_config": tfx.proto.RangeConfig(
                rolling_range=tfx.proto.RollingRange(num_spans=config.rolling_spans))},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=validation_gate.id,
                                     output_key="validated_examples"),
        ).with_id("rolling_span_window")]
        # A channel named by producer id is resolved from ML Metadata, not wired: order it
        # explicitly, so this run's newly validated span is in the window.
        span_window[0].add_upstream_node(validation_gate)
        training_examples = span_window[0].outputs["examples"]

    transform = tfx.components.Transform(
        examples=training_examples, schema=schema_gen.outputs["schema"],
        preprocessing_fn=configs.PREPROCESSING_FN,
        custom_config={"user_activity_bounds": list(config.evaluation.user_activity_bounds),
                       "movie_popularity_bounds": list(config.evaluation.movie_popularity_bounds)})

    trainer = tfx.components.Trainer(
        run_fn=configs.RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config=dataclasses.asdict(config.hyperparameters))

    latest_blessed_model = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = tfx.components.Evaluator(
        examples=validated,
        model=trainer.outputs["model"],
        baseline_model=latest_blessed_model.outputs["model"],
        eval_config=eval_config(config.evaluation))

    model_pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.push_base)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher.Executor))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[example_gen_component, statistics_gen, schema_gen, example_validator,
                    validation_gate, *span_window, transform, trainer, latest_blessed_model,
                    evaluator, model_pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_file),
        beam_pipeline_args=list(config.beam_pipeline_args))
