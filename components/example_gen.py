"""ExampleGen executor for canonical ratings CSVs, with explicit types.

CsvExampleGen infers column types, so numeric-looking IDs become INT64 and a single bad cell
changes a column's type silently. Here the types come from `features`: IDs are bytes, rating is a
float, timestamp an int, and a row that does not parse fails the run naming its file and line.
Range checks are left to ExampleValidator, which compares the data with the schema.
"""
import os
from typing import Any, Dict, Iterator

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs

from components import features, records


def to_example(rating: records.Rating) -> tf.train.Example:
    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: feature(bytes_list=tf.train.BytesList(value=[rating.user_id.encode()])),
        features.MOVIE_ID: feature(bytes_list=tf.train.BytesList(value=[rating.movie_id.encode()])),
        features.RATING: feature(float_list=tf.train.FloatList(value=[rating.rating])),
        features.TIMESTAMP: feature(int64_list=tf.train.Int64List(value=[rating.timestamp])),
    }))


def read_ratings_file(path: str) -> Iterator[records.Rating]:
    """Reads one canonical ratings CSV, checking its header and every row."""
    with fileio.open(path, "rb") as f:
        records.check_header(f.readline(), path)
        for line_no, raw in enumerate(f, start=2):
            text = records.decode_line(raw, path, line_no)
            if text.strip():
                yield records.parse_fields(text.split(","), path, line_no)


class _RatingsCsvToExample(beam.PTransform):
    """Reads every file matching the split pattern under input_base into tf.Examples."""

    def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
        super().__init__()
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = os.path.join(input_base, split_pattern)

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        files = sorted(fileio.glob(self._pattern))
        if not files:
            raise FileNotFoundError(f"no ratings files match {self._pattern}")
        return (pipeline
                | "ListFiles" >> beam.Create(files)
                | "ReadRows" >> beam.FlatMap(read_ratings_file)
                | "ToExample" >> beam.Map(to_example))


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for the canonical `user_id,movie_id,rating,timestamp` CSV."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _RatingsCsvToExample
