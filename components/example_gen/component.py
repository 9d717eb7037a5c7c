"""RatingsExampleGen: TFX's FileBasedExampleGen with movierec's typed, validating CSV executor.

A subclass, as TFX's own CsvExampleGen / ImportExampleGen are: the pipeline wires it like any
ExampleGen (input_base, input_config, output_config, range_config) and the executor is fixed
here rather than passed inline.
"""
from typing import Optional, Tuple

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.example_gen import executor


class RatingsExampleGen(FileBasedExampleGen):
    """Ratings CSVs in the canonical layout (ratings/features.py) to typed tf.Examples."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, input_config: example_gen_pb2.Input,
                 output_config: Optional[example_gen_pb2.Output], movies: Optional[str],
                 users: Optional[str], rating_range: Tuple[float, float], code_digest: str):
        """`movies` / `users`: side tables to join (None: absent); a rating outside
        `rating_range` fails the run naming its line; `code_digest` keys the cache."""
        super().__init__(
            input_base=input_base, input_config=input_config, output_config=output_config,
            custom_config=executor.ingest_config(movies, users, rating_range, code_digest))
