"""Resolver strategies for what a run carries over from earlier runs, chosen so that a rerun on
unchanged data resolves exactly what the previous run did (and its components are cached).

The warm-start model and the analyzer cache are the newest artifact older than the newest
validated examples: with a new span, that is what the last run left (its blessed model to
warm-start from, its Transform analyzer cache); with no new data, it is what the last run itself
started from, so Transform and Trainer see the same inputs again. (The plain "latest" strategies
would hand a rerun the model or cache its previous run just produced, and retrain a model on data
it was already trained on.)
MLMD artifact IDs grow with creation, so "older" is a smaller ID. (A strategy must return every
input key; only `model` / `cache` / `statistics` are used downstream.) The drift baseline is
the last accepted statistics of other examples (LastAcceptedStatisticsStrategy).
"""
from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.common import resolver

from components import validation_gate

EXAMPLES = "examples"


def _older_than_newest_examples(artifacts: List[types.Artifact],
                                input_dict: Dict[str, List[types.Artifact]]) -> List[types.Artifact]:
    examples = input_dict.get(EXAMPLES) or []
    if not examples:
        return []
    newest = max(e.id for e in examples)
    return sorted((a for a in artifacts if a.id < newest), key=lambda a: a.id)


class WarmStartModelStrategy(resolver.ResolverStrategy):
    """The newest blessed Model older than the newest examples; inputs model, model_blessing, examples."""

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        blessed = {b.get_int_custom_property("current_model_id") for b in input_dict["model_blessing"]
                   if b.get_int_custom_property("blessed") == 1}
        models = _older_than_newest_examples(
            [m for m in input_dict["model"] if m.id in blessed], input_dict)
        return {**input_dict, "model": models[-1:]}


class AnalyzerCacheStrategy(resolver.ResolverStrategy):
    """The newest TransformCache older than the newest examples; inputs cache, examples."""

    def resolve_artifacts(self, store, input_dict) -> Optional[Dict[str, List[types.Artifact]]]:
        return {**input_dict, "cache": _older_than_newest_examples(input_dict["cache"], input_dict)[-1:]}


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
