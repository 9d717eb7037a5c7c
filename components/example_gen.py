"""ExampleGen executor for canonical ratings CSVs, with explicit types and joined side tables.

CsvExampleGen infers column types, so numeric-looking IDs become INT64 and a single bad cell
changes a column's type silently. Here the types come from `features`: IDs are bytes, rating is a
float, timestamp an int, and a row that does not parse fails the run naming its file and line.
Range checks are left to ExampleValidator, which compares the data with the schema.

When movies.csv / users.csv are given (custom_config `movies`, `users`), each rating also
carries its movie's title, year and genres and its user's age, gender and occupation.
"""
import os
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import features, records, side_tables


def _bytes(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def to_example(rating: records.Rating, movie: Optional[side_tables.Movie] = None,
               user: Optional[side_tables.User] = None) -> tf.train.Example:
    feature = {
        features.USER_ID: _bytes(rating.user_id),
        features.MOVIE_ID: _bytes(rating.movie_id),
        features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[rating.rating])),
        features.TIMESTAMP: _int(rating.timestamp),
    }
    if movie:
        feature[features.TITLE] = _bytes(movie.title)
        if movie.year is not None:
            feature[features.YEAR] = _int(movie.year)
        if movie.genres:
            feature[features.GENRES] = _bytes(*movie.genres)
    if user:
        if user.age is not None:
            feature[features.AGE] = _int(user.age)
        feature[features.GENDER] = _bytes(user.gender)
        feature[features.OCCUPATION] = _bytes(user.occupation)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def side_table_config(movies: Optional[str], users: Optional[str]) -> example_gen_pb2.CustomConfig:
    """ExampleGen custom_config naming the side tables to join (either may be None).

    A fingerprint of each table is included because ExampleGen's cache key covers the ratings
    files and its properties only: an edited movies.csv must re-run ExampleGen.
    """
    tables = struct_pb2.Struct()
    for key, path in (("movies", movies), ("users", users)):
        if path:
            stat = fileio.stat(path)
            tables.update({key: path, f"{key}_fingerprint": f"{stat.length}:{stat.mtime_nsec}"})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(tables)
    return config


def _side_table_paths(exec_properties: Dict[str, Any]) -> Dict[str, str]:
    serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not serialized:
        return {}
    config = proto_utils.json_to_proto(serialized, example_gen_pb2.CustomConfig())
    tables = struct_pb2.Struct()
    config.custom_config.Unpack(tables)
    return json_format.MessageToDict(tables)


def _read_table(path: Optional[str], parse, key) -> Dict[str, Any]:
    """A small side table, read whole (from any filesystem Beam workers see) and keyed by ID."""
    if not path:
        return {}
    with fileio.open(path, "rb") as f:
        lines = [records.decode_line(raw, path, n) for n, raw in enumerate(f.read().splitlines(), 1)]
    return {key(row): row for row in parse(lines, path)}


class _JoinSideTables(beam.DoFn):
    """Turns ratings into tf.Examples with movie and user features; tables load once per worker."""

    def __init__(self, movies_path: Optional[str], users_path: Optional[str]):
        super().__init__()
        self._paths = (movies_path, users_path)

    def setup(self):
        self._movies = _read_table(self._paths[0], side_tables.parse_movies, lambda m: m.movie_id)
        self._users = _read_table(self._paths[1], side_tables.parse_users, lambda u: u.user_id)

    def process(self, rating: records.Rating):
        yield to_example(rating, self._movies.get(rating.movie_id), self._users.get(rating.user_id))


def read_ratings_file(path: str) -> Iterator[records.Rating]:
    """Reads one canonical ratings CSV, checking its header and every row."""
    with fileio.open(path, "rb") as f:
        yield from records.read_ratings(f, path)


class _RatingsCsvToExample(beam.PTransform):
    """Reads every file matching the split pattern under input_base into tf.Examples."""

    def __init__(self, exec_properties: Dict[str, Any], split_pattern: str):
        super().__init__()
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._pattern = os.path.join(input_base, split_pattern)
        self._tables = _side_table_paths(exec_properties)

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        files = sorted(fileio.glob(self._pattern))
        if not files:
            raise FileNotFoundError(f"no ratings files match {self._pattern}")
        return (pipeline
                | "ListFiles" >> beam.Create(files)
                | "ReadRows" >> beam.FlatMap(read_ratings_file)
                | "ToExample" >> beam.ParDo(_JoinSideTables(self._tables.get("movies"),
                                                             self._tables.get("users"))))


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for the canonical `user_id,movie_id,rating,timestamp` CSV."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _RatingsCsvToExample
