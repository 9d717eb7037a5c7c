"""The resolver strategies, tested as TFX tests its own (tfx/dsl/input_resolution/strategies/
latest_blessed_model_strategy_test.py: the strategy's resolve_artifacts on an ML Metadata store),
but with real TFX artifacts put into an in-memory store in the order runs create them, so their IDs
are the ones ML Metadata hands out rather than numbers the test picks.

The history: run 1 ingested span 1 and produced cache 1 and a blessed model 1; run 2 ingested span
2 and produced cache 2, a blessed model 2, then a model 3 the Evaluator did not bless."""
import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import standard_artifacts

from components import validation_gate
from components.resolvers import (CANDIDATE, AcceptedExamplesStrategy, AnalyzerCacheStrategy,
                                  LastAcceptedStatisticsStrategy, LastBlessedModelStrategy, WarmStartModelStrategy)
from tests.metadata_store import MemoryStore


class Store(MemoryStore):
    """Artifacts put into the store in the order runs create them."""

    def put(self, artifact_class, uri: str, **custom_properties) -> types.Artifact:
        artifact = artifact_class()
        artifact.uri = uri
        for name, value in custom_properties.items():
            artifact.set_int_custom_property(name, value)
        return self.add(artifact)

    def model_and_blessing(self, uri: str, blessed: bool):
        model = self.put(standard_artifacts.Model, uri)
        self.put(standard_artifacts.ModelBlessing, uri + "-blessing",
                 blessed=int(blessed), current_model_id=model.id)
        return model

    def warm_start_inputs(self):
        return {"model": self.read(standard_artifacts.Model),
                "model_blessing": self.read(standard_artifacts.ModelBlessing),
                "examples": self.read(standard_artifacts.Examples)}

    def cache_inputs(self):
        return {"cache": self.read(standard_artifacts.TransformCache),
                "examples": self.read(standard_artifacts.Examples)}


@pytest.fixture
def history():
    store = Store()
    store.put(standard_artifacts.Examples, "span-1", span=1)
    store.put(standard_artifacts.TransformCache, "cache-1")
    store.model_and_blessing("model-1", blessed=True)
    store.put(standard_artifacts.Examples, "span-2", span=2)
    store.put(standard_artifacts.TransformCache, "cache-2")
    store.model_and_blessing("model-2", blessed=True)
    store.model_and_blessing("model-3", blessed=False)
    return store


def uris(artifacts):
    return [a.uri for a in artifacts]


def resolve(store: Store, strategy, inputs):
    return strategy.resolve_artifacts(store.mlmd, inputs)


def test_a_rerun_on_the_same_span_gets_what_the_last_run_started_from(history):
    """Newest examples are span 2: the newest blessed model and cache made before them are run 1's,
    as run 2 itself had, so run 2's Transform and Trainer inputs are the same again (cached)."""
    assert uris(resolve(history, WarmStartModelStrategy(), history.warm_start_inputs())["model"]) == ["model-1"]
    assert uris(resolve(history, AnalyzerCacheStrategy(), history.cache_inputs())["cache"]) == ["cache-1"]


def test_a_new_span_gets_the_newest_blessed_model_and_cache(history):
    """Span 3 arrives: the newest model (3) was not blessed and is passed over for model 2."""
    history.put(standard_artifacts.Examples, "span-3", span=3)
    assert uris(resolve(history, WarmStartModelStrategy(), history.warm_start_inputs())["model"]) == ["model-2"]
    assert uris(resolve(history, AnalyzerCacheStrategy(), history.cache_inputs())["cache"]) == ["cache-2"]


def test_a_blessing_counts_only_for_the_model_it_names(history):
    """Model 3's blessing says no; a newer blessing of model 1 does not bless model 3 either."""
    history.put(standard_artifacts.ModelBlessing, "again", blessed=1,
                current_model_id=history.read(standard_artifacts.Model)[0].id)
    history.put(standard_artifacts.Examples, "span-3", span=3)
    assert uris(resolve(history, WarmStartModelStrategy(), history.warm_start_inputs())["model"]) == ["model-2"]


def test_no_blessed_model_resolves_none():
    store = Store()
    store.put(standard_artifacts.Examples, "span-1", span=1)
    store.model_and_blessing("model-1", blessed=False)
    store.put(standard_artifacts.Examples, "span-2", span=2)
    assert resolve(store, WarmStartModelStrategy(), store.warm_start_inputs())["model"] == []


def test_without_examples_nothing_is_carried_over(history):
    """No validated examples yet (or none resolved): there is no "before them", so nothing."""
    inputs = {**history.warm_start_inputs(), "examples": []}
    assert resolve(history, WarmStartModelStrategy(), inputs)["model"] == []
    assert resolve(history, AnalyzerCacheStrategy(), {**history.cache_inputs(), "examples": []})["cache"] == []


def test_every_input_key_is_returned_unchanged_but_the_resolved_one(history):
    """A resolver strategy must return every input key (TFX checks the output against its channels)."""
    inputs = history.warm_start_inputs()
    result = resolve(history, WarmStartModelStrategy(), inputs)
    assert set(result) == set(inputs)
    assert result["model_blessing"] == inputs["model_blessing"] and result["examples"] == inputs["examples"]
    inputs = history.cache_inputs()
    result = resolve(history, AnalyzerCacheStrategy(), inputs)
    assert set(result) == set(inputs) and result["examples"] == inputs["examples"]


def test_every_accepted_span_is_known_the_newest_artifact_of_each(history):
    """Span 1 left a rolling window of one span long ago, and span 2 was ingested twice (a run with
    --no-cache, or its data changed): the servable knows both spans, span 2 as last ingested."""
    history.put(standard_artifacts.Examples, "span-2-again", span=2)
    inputs = {"examples": history.read(standard_artifacts.Examples)}
    assert uris(resolve(history, AcceptedExamplesStrategy(), inputs)["examples"]) == ["span-1", "span-2-again"]


def test_input_without_spans_is_the_newest_file_given():
    """Without span folders every run is span 0: the newest file given is the whole of the data."""
    store = Store()
    for uri in ("ratings-monday", "ratings-tuesday"):
        store.put(standard_artifacts.Examples, uri, span=0)
    inputs = {"examples": store.read(standard_artifacts.Examples)}
    assert uris(resolve(store, AcceptedExamplesStrategy(), inputs)["examples"]) == ["ratings-tuesday"]


def accepted_statistics(store: Store, examples: types.Artifact, drift_accepted: bool = False) -> types.Artifact:
    """What the ValidationGate outputs when it passes `examples`."""
    return store.put(standard_artifacts.ExampleStatistics,
                     f"accepted-{examples.uri}" + ("-on-purpose" if drift_accepted else ""),
                     **{validation_gate.EXAMPLES_ID: examples.id, validation_gate.DRIFT_ACCEPTED: int(drift_accepted)})


def baseline(store: Store, examples: types.Artifact):
    """The drift baseline for a run whose ExampleGen output is `examples`."""
    inputs = {"statistics": store.read(standard_artifacts.ExampleStatistics), "examples": [examples]}
    result = resolve(store, LastAcceptedStatisticsStrategy(), inputs)
    assert set(result) == set(inputs) and result["examples"] == [examples]
    return uris(result["statistics"])


def test_the_drift_baseline_is_the_last_accepted_span_never_a_refused_one():
    """Spans 1 and 2 were accepted, span 3 refused (the gate failed: no accepted statistics), and
    span 4 arrives: its baseline is span 2's. Span 1's first run had none (cold start: it passes)."""
    store = Store()
    span_1 = store.put(standard_artifacts.Examples, "span-1", span=1)
    assert baseline(store, span_1) == []
    accepted_statistics(store, span_1)
    span_2 = store.put(standard_artifacts.Examples, "span-2", span=2)
    assert baseline(store, span_2) == ["accepted-span-1"]
    accepted_statistics(store, span_2)
    span_3 = store.put(standard_artifacts.Examples, "span-3", span=3)
    assert baseline(store, span_3) == ["accepted-span-2"]
    span_4 = store.put(standard_artifacts.Examples, "span-4", span=4)
    assert baseline(store, span_4) == ["accepted-span-2"]


def test_a_rerun_gets_the_same_baseline_unless_its_span_was_accepted_on_purpose():
    """A rerun on span 2 (ExampleGen cached: the same examples) compares with span 1 again, as its
    first run did, so the gate is cached. Once span 2 was accepted past a threshold on purpose, it
    is its own baseline: a rerun without --accept-drift does not refuse it again."""
    store = Store()
    span_1 = store.put(standard_artifacts.Examples, "span-1", span=1)
    accepted_statistics(store, span_1)
    span_2 = store.put(standard_artifacts.Examples, "span-2", span=2)
    accepted_statistics(store, span_2)
    assert baseline(store, span_2) == ["accepted-span-1"]
    on_purpose = accepted_statistics(store, store.put(standard_artifacts.Examples, "span-3", span=3),
                                     drift_accepted=True)
    span_3 = store.read(standard_artifacts.Examples)[-1]
    assert baseline(store, span_3) == ["accepted-span-3-on-purpose"] == [on_purpose.uri]
    # That rerun passes (distance 0) and its gate accepts span 3 again, not on purpose.
    accepted_statistics(store, span_3)
    assert baseline(store, span_3) == [on_purpose.uri]
    span_4 = store.put(standard_artifacts.Examples, "span-4", span=4)
    assert baseline(store, span_4) == ["accepted-span-3"]


def baseline_inputs(store: Store, candidates):
    return {"model": store.read(standard_artifacts.Model),
            "model_blessing": store.read(standard_artifacts.ModelBlessing), CANDIDATE: candidates}


def tfx_baseline(store: Store):
    """TFX's LatestBlessedModelStrategy, the referee: what the gates compared with before."""
    inputs = baseline_inputs(store, [])
    del inputs[CANDIDATE]
    return uris(resolve(store, LatestBlessedModelStrategy(), inputs)["model"])


def test_the_baseline_of_a_cached_candidate_is_the_blessed_model_before_it(history):
    """A rerun on span 2's data: its Trainer is cached and hands on model 2, which run 2 blessed.
    TFX's LatestBlessedModelStrategy (the referee) gives model 2 as its own baseline; ours gives
    model 1, what run 2's gates compared model 2 with, so the rerun's gates are cached."""
    (model_2,) = [m for m in history.read(standard_artifacts.Model) if m.uri == "model-2"]
    assert tfx_baseline(history) == ["model-2"]
    resolved = resolve(history, LastBlessedModelStrategy(), baseline_inputs(history, [model_2]))
    assert uris(resolved["model"]) == ["model-1"] and uris(resolved["model_blessing"]) == ["model-1-blessing"]


def test_a_new_candidate_is_judged_against_the_newest_blessed_model(history):
    """A new model (new data or new settings), or none yet: the baseline is TFX's."""
    new = history.put(standard_artifacts.Model, "model-4")
    for candidates in ([new], []):
        resolved = resolve(history, LastBlessedModelStrategy(), baseline_inputs(history, candidates))
        assert uris(resolved["model"]) == tfx_baseline(history) == ["model-2"]


def test_under_airflow_the_candidate_is_the_newest_trainer_executions_output(history):
    """TFX's Airflow launcher hands the resolver the Trainer's models of every run. Runs 1 and 2
    output models 1 and 2; run 3, its settings set back to run 1's, is cached and outputs model 1
    again (a cached execution records its outputs too): model 1 is the candidate, model 2 the baseline."""
    models = {m.uri: m for m in history.read(standard_artifacts.Model)}
    trainer = history.mlmd.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    for uri in ("model-1", "model-2", "model-1"):
        [execution] = history.mlmd.put_executions([metadata_store_pb2.Execution(type_id=trainer)])
        event = metadata_store_pb2.Event(artifact_id=models[uri].id, execution_id=execution,
                                         type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = "model"
        history.mlmd.put_events([event])
    inputs = baseline_inputs(history, [models["model-1"], models["model-2"]])
    assert uris(resolve(history, LastBlessedModelStrategy(), inputs)["model"]) == ["model-2"]
