"""Resolver strategies for what a run carries over from earlier runs, chosen so that a rerun on
unchanged data resolves exactly what the previous run did (and its components are cached).

AcceptedExamplesStrategy: every rating the pipeline ever accepted, which the servable that is
pushed knows (components/servable_export).

The warm-start model and the analyzer cache are the newest artifact older than the newest
validated examples: with a new span, that is what the last run left (its blessed model to
warm-start from, its Transform analyzer cache); with no new data, it is what the last run itself
started from, so Transform and Trainer see the same inputs again. (The plain "latest" strategies
would hand a rerun the model or cache its previous run just produced, and retrain a model on data
it was already trained on.)
MLMD artifact IDs grow with creation, so "older" is a smaller ID. (A strategy must return every
input key; only `model` / `cache` / `statistics` are used downstream.) The drift baseline is
the last accepted statistics of other examples (LastAcceptedStatisticsStrategy).

The gates' baseline is the newest blessed model other than this run's candidate
(LastBlessedModelStrategy): a rerun with no new data, whose cached Trainer hands on the model the
last run blessed, then sees exactly the last run's inputs in every gate, which are cached too.
"""
from typing import Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver

from components import rows, validation_gate

EXAMPLES = "examples"
CANDIDATE = "candidate"


def _older_than_newest_examples(artifacts: List[types.Artifact],
                                input_dict: Dict[str, List[types.Artifact]]) -> List[types.Artifact]:
    examples = input_dict.get(EXAMPLES) or []
    if not examples:
        return []
    newest = max(e.id for e in examples)
    return sorted((a for a in artifacts if a.id < newest), key=lambda a: a.id)


def _blessing_by_model(blessings: List[types.Artifact]) -> Dict[int, types.Artifact]:
    """{model ID: its blessing} of the ModelBlessings that bless (TFX's `current_model_id`, `blessed`)."""
    return {b.get_int_custom_property("current_model_id"): b for b in blessings
            if b.get_int_custom_property("blessed") == 1}


class WarmStartModelStrategy(resolver.ResolverStrategy):
    """The newest blessed Model older than the newest examples; inputs model, model_blessing, examples."""

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        blessed = _blessing_by_model(input_dict["model_blessing"])
        models = _older_than_newest_examples(
            [m for m in input_dict["model"] if m.id in blessed], input_dict)
        return {**input_dict, "model": models[-1:]}


def newest_output(store, artifacts: List[types.Artifact]) -> Optional[types.Artifact]:
    """The artifact the newest execution output: this run's output of a node that already ran in
    this run. TFX's IR-based runners hand a resolver this run's output alone; TFX's Airflow
    launcher hands it the node's outputs of every run (`get_qualified_artifacts` by producer), and
    records a cached execution's outputs as OUTPUT events of that execution too."""
    if len(artifacts) <= 1:
        return artifacts[0] if artifacts else None
    events = [e for e in store.get_events_by_artifact_ids([a.id for a in artifacts])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    newest = max(events, key=lambda e: e.execution_id).artifact_id
    return next(a for a in artifacts if a.id == newest)


class LastBlessedModelStrategy(resolver.ResolverStrategy):
    """The gates' baseline: the newest blessed Model other than this run's candidate, with its
    blessing; inputs model, model_blessing, candidate (the Trainer's output).

    TFX's LatestBlessedModelStrategy hands a rerun with no new data the model the last run blessed,
    which is also its cached candidate: every gate then re-runs to compare the model with itself
    (and TFX's Airflow launcher cannot register the Evaluator, given one artifact as `model` and
    `baseline_model`). Leaving the candidate out, a rerun's gates see the last run's inputs and are
    cached; a new candidate (new data, new settings) is still judged against the last blessed model.
    """

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        candidate = newest_output(store, input_dict.get(CANDIDATE) or [])
        blessings = _blessing_by_model(input_dict["model_blessing"])
        models = sorted((m for m in input_dict["model"]
                         if m.id in blessings and (candidate is None or m.id != candidate.id)), key=lambda m: m.id)
        return {"model": models[-1:], "model_blessing": [blessings[m.id] for m in models[-1:]], CANDIDATE: []}


class AnalyzerCacheStrategy(resolver.ResolverStrategy):
    """The newest TransformCache older than the newest examples; inputs cache, examples."""

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        return {**input_dict, "cache": _older_than_newest_examples(input_dict["cache"], input_dict)[-1:]}


class AcceptedExamplesStrategy(resolver.ResolverStrategy):
    """Every validated Examples artifact, the newest of each span; input examples (the gate's
    validated_examples, all runs).

    A span is accepted once it passes validation, and stays accepted after it leaves the rolling
    window. A span ingested again (changed data, a run with --no-cache) is its newest artifact:
    the data as last given. Input without span folders is span 0 every run, so the newest file
    (or train/eval folders) given is the whole of it, as it is for training."""

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        newest = {}
        for artifact in sorted(input_dict[EXAMPLES], key=lambda a: a.id):
            newest[rows.span(artifact)] = artifact
        return {**input_dict, EXAMPLES: [newest[span] for span in sorted(newest)]}


class LastAcceptedStatisticsStrategy(resolver.ResolverStrategy):
    """The drift baseline: the statistics the ValidationGate last accepted (its
    `accepted_statistics`), other than those of this run's examples; inputs statistics, examples.

    With a new span (or a changed ratings file) that is the last span that passed, so a refused
    span is never anyone's baseline. A rerun on unchanged examples resolves the same baseline as
    the run before it, and stays cached. Once examples were accepted on purpose past a threshold
    (`--accept-drift`), they are their own baseline: a later run on them without the flag does not
    refuse what was accepted.
    """

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        examples = input_dict.get(EXAMPLES) or []
        current = max((e.id for e in examples), default=None)
        accepted = input_dict["statistics"]
        own = [s for s in accepted if s.get_int_custom_property(validation_gate.EXAMPLES_ID) == current]
        on_purpose = [s for s in own if s.get_int_custom_property(validation_gate.DRIFT_ACCEPTED) == 1]
        baseline = on_purpose or [s for s in accepted if s.id not in {o.id for o in own}]
        return {**input_dict, "statistics": sorted(baseline, key=lambda s: s.id)[-1:]}
