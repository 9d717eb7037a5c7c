"""ExampleGen executor for canonical ratings CSVs, with explicit types and joined side tables.

CsvExampleGen infers column types, so numeric-looking IDs become INT64 and a single bad cell
changes a column's type silently. Here the types come from `features`: IDs are bytes, rating is a
float, timestamp an int, and a row that does not parse fails the run naming its file and line.
The same (user, movie) pair twice is rejected too, naming both lines, and so is a rating outside
the schema's range. ExampleValidator then compares the whole data set with the schema.

When movies.csv / users.csv are given (custom_config `movies`, `users`), each rating also
carries its movie's title, year and genres and its user's age, gender and occupation.

Files are cut into chunks at line ends so Beam can spread them over workers; each chunk is parsed
column-wise (pandas) and encoded to tf.Examples in C++ (tfx_bsl). A chunk the fast path finds
anything odd in (a quote, a blank line, a bad value) is re-read line by line (records.parse_lines),
which names the bad line or accepts the chunk: the two paths agree on what is valid, and both
read what Python's csv.reader reads (see records.py for the accepted dialect).

No rating is in two places: the (user, movie) pairs of every file of a run, across all given
splits, are checked for duplicates together.
"""
import codecs
import csv
import dataclasses
import io
import itertools
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx_bsl.coders import example_coder
from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.components.util import examples_utils
from tfx.utils import proto_utils

from components import code_version
from ratings import features, records, side_tables

# Bytes per chunk: ~300k ratings, a few seconds of work.
CHUNK_BYTES = 8 << 20
# The duplicate check shuffles (pair hash, line) by hash into this many groups.
DUPLICATE_CHECK_GROUPS = 8
# zlib level of the written files: level 1 writes ~3x faster than the default 6, ~10% larger.
GZIP_LEVEL = 1
_BYTES = pa.large_list(pa.large_binary())
# Custom property of the Examples: {"movies": path or null, "users": path or null}, the side
# tables joined (the run summary shows it, so a table left over from an earlier import is seen).
SIDE_TABLES_PROPERTY, SIDE_TABLES = "side_tables", ("movies", "users")


def ingest_config(movies: Optional[str], users: Optional[str], rating_range: Tuple[float, float],
                  code_digest: str) -> example_gen_pb2.CustomConfig:
    """ExampleGen custom_config: the side tables to join (either may be None), the schema's
    rating range (a rating outside it fails the run naming its line), and the code digest.

    A fingerprint of each table and the code digest are included because ExampleGen's cache key
    covers the ratings files and its properties only: an edited movies.csv or executor must re-run it.
    """
    values = struct_pb2.Struct()
    for key, path in zip(SIDE_TABLES, (movies, users)):
        if path:
            stat = fileio.stat(path)
            values.update({key: path, f"{key}_fingerprint": f"{stat.length}:{stat.mtime_nsec}"})
    values.update({"rating_range": list(rating_range), code_version.KEY: code_digest})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(values)
    return config


def _ingest_settings(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not serialized:
        return {}
    config = proto_utils.json_to_proto(serialized, example_gen_pb2.CustomConfig())
    values = struct_pb2.Struct()
    config.custom_config.Unpack(values)
    return json_format.MessageToDict(values)


def _read_table(path: Optional[str], parse, key) -> Dict[str, Any]:
    """A small side table, read whole (from any filesystem Beam workers see) and keyed by ID."""
    if not path:
        return {}
    with fileio.open(path, "rb") as f:
        text = f.read().removeprefix(codecs.BOM_UTF8)
        lines = [records.decode_line(raw, path, n) for n, raw in enumerate(text.splitlines(), 1)]
    return {key(row): row for row in parse(lines, path)}


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Lines [first_line, ...) of `path`, bytes [start, end): whole lines only (the last chunk
    of a truncated file excepted), laid out as the file's `header` says."""
    path: str
    file_index: int
    start: int
    end: int
    first_line: int
    header: records.Header
    rating_range: Optional[Tuple[float, float]] = None


@dataclasses.dataclass
class Rows:
    """Parsed ratings of one chunk, column-wise, with the line each came from."""
    path: str
    file_index: int
    lines: np.ndarray       # int64
    user_ids: np.ndarray    # object (str)
    movie_ids: np.ndarray   # object (str)
    ratings: np.ndarray     # float32
    timestamps: np.ndarray  # int64

    def pair_hashes(self) -> np.ndarray:
        return pd.util.hash_pandas_object(
            pd.DataFrame({"u": self.user_ids, "m": self.movie_ids}), index=False).to_numpy()


def plan_chunks(indexed_path: Tuple[int, str], rating_range: Optional[Tuple[float, float]] = None,
                chunk_bytes: Optional[int] = None) -> Iterator[Chunk]:
    """Reads a file's header, then cuts the rest after the last LF of about every CHUNK_BYTES.

    Offsets are counted on the bytes read, so any line end (LF, CRLF, mixed) cuts alike; bytes
    after the last LF (a truncated line) form the last chunk, which parsing then refuses.
    """
    file_index, path = indexed_path
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with fileio.open(path, "rb") as f:
        pending = f.read(chunk_bytes)
        while b"\n" not in pending and (more := f.read(chunk_bytes)):
            pending += more
        header_end = pending.find(b"\n") + 1 or len(pending)
        header = records.read_header(pending[:header_end], path)
        start, line, pending = header_end, 2, pending[header_end:]
        at_end = False
        while pending or not at_end:
            cut = len(pending) if at_end else pending.rfind(b"\n") + 1
            if not at_end and (len(pending) < chunk_bytes or not cut):
                more = f.read(chunk_bytes)
                pending, at_end = pending + more, not more
                continue
            yield Chunk(path, file_index, start, start + cut, line, header, rating_range)
            start, line, pending = start + cut, line + pending.count(b"\n", 0, cut), pending[cut:]
    if line == 2:
        raise records.RowError(path, 2, None, "no ratings after the header")


def _read_chunk(chunk: Chunk) -> bytes:
    with fileio.open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        return f.read(chunk.end - chunk.start)


def _parse_columns(raw: bytes, chunk: Chunk) -> Optional[Rows]:
    """The fast path: every line a clean unquoted rating, or None to let the line-by-line parser decide."""
    if not raw.endswith(b"\n") or b'"' in raw:
        return None
    header = chunk.header
    user, movie, rating, timestamp = header.positions
    dtypes = {i: str for i in range(len(header.names))}
    dtypes.update({rating: np.float64, timestamp: np.float64})
    try:
        # No names: pandas would take a surplus first field for an index instead of failing.
        frame = pd.read_csv(io.BytesIO(raw), header=None, na_filter=False, dtype=dtypes,
                            quoting=csv.QUOTE_NONE, skip_blank_lines=False, encoding="utf-8",
                            encoding_errors="strict")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return None
    # One row per LF: pandas also ends a line at a lone CR, which csv.reader refuses.
    if frame.shape != (raw.count(b"\n"), len(header.names)):
        return None
    user_ids = frame[user].str.strip()
    movie_ids = frame[movie].str.strip()
    ratings = frame[rating].to_numpy(np.float64)
    timestamps = frame[timestamp].to_numpy(np.float64)
    if ((user_ids == "").any() or (movie_ids == "").any() or not np.isfinite(ratings).all()
            or not np.isfinite(timestamps).all() or (timestamps != np.floor(timestamps)).any()):
        return None
    if chunk.rating_range and not ((ratings >= chunk.rating_range[0]) & (ratings <= chunk.rating_range[1])).all():
        return None
    return Rows(chunk.path, chunk.file_index, chunk.first_line + np.arange(len(frame)),
                user_ids.to_numpy(object), movie_ids.to_numpy(object), ratings.astype(np.float32),
                timestamps.astype(np.int64))


def _parse_lines(raw: bytes, chunk: Chunk) -> Rows:
    """The exact path: raises RowError at the first bad line (records.parse_lines)."""
    numbered = list(records.parse_lines(records.split_lines(raw), chunk.path, chunk.first_line,
                                        chunk.rating_range, chunk.header))
    return Rows(chunk.path, chunk.file_index, np.array([n for n, _ in numbered], np.int64),
                np.array([r.user_id for _, r in numbered], object),
                np.array([r.movie_id for _, r in numbered], object),
                np.array([r.rating for _, r in numbered], np.float32),
                np.array([r.timestamp for _, r in numbered], np.int64))


def parse_chunk(chunk: Chunk) -> Iterator[Rows]:
    raw = _read_chunk(chunk)
    rows = _parse_columns(raw, chunk) or _parse_lines(raw, chunk)
    if len(rows.lines):
        yield rows


def _singletons(values: np.ndarray, arrow_type) -> pa.Array:
    """[[v0], [v1], ...] as an Arrow list array (one value per example)."""
    return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), pa.int64()),
                                         pa.array(values, arrow_type))


def _optional(values: List[Any], arrow_type) -> pa.Array:
    """[[v], None, ...]: None leaves the feature out of that example."""
    return pa.array([None if v is None else [v] for v in values], pa.large_list(arrow_type))


class _SideColumns:
    """A side table as Arrow list columns by row, plus a trailing null row for unknown IDs, so
    joining a chunk is one hash lookup and one `take` per column."""

    def __init__(self, ids: List[str], columns: Dict[str, pa.Array]):
        self._index = pd.Index(ids)
        self._columns = {name: pa.concat_arrays([column, pa.nulls(1, column.type)])
                         for name, column in columns.items()}

    def join(self, ids: np.ndarray) -> Dict[str, pa.Array]:
        rows = self._index.get_indexer(ids)
        rows[rows < 0] = len(self._index)
        rows = pa.array(rows)
        return {name: column.take(rows) for name, column in self._columns.items()}


def _movie_columns(path: Optional[str]) -> Optional[_SideColumns]:
    movies = list(_read_table(path, side_tables.parse_movies, lambda m: m.movie_id).values())
    return _SideColumns([m.movie_id for m in movies], {
        features.TITLE: _optional([m.title.encode() for m in movies], pa.large_binary()),
        features.YEAR: _optional([m.year for m in movies], pa.int64()),
        features.GENRES: pa.array([[g.encode() for g in m.genres] or None for m in movies], _BYTES),
    }) if movies else None


def _user_columns(path: Optional[str]) -> Optional[_SideColumns]:
    users = list(_read_table(path, side_tables.parse_users, lambda u: u.user_id).values())
    return _SideColumns([u.user_id for u in users], {
        features.AGE: _optional([u.age for u in users], pa.int64()),
        features.GENDER: _optional([u.gender.encode() for u in users], pa.large_binary()),
        features.OCCUPATION: _optional([u.occupation.encode() for u in users], pa.large_binary()),
    }) if users else None


class _ExampleEncoder:
    """Serialized tf.Examples of a chunk's rows, side tables joined; built once per worker."""

    def __init__(self, movies_path: Optional[str], users_path: Optional[str]):
        self._movies = _movie_columns(movies_path)
        self._users = _user_columns(users_path)
        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def encode(self, rows: Rows) -> List[bytes]:
        columns = {
            features.USER_ID: _singletons(rows.user_ids, pa.large_string()).cast(_BYTES),
            features.MOVIE_ID: _singletons(rows.movie_ids, pa.large_string()).cast(_BYTES),
            features.RATING: _singletons(rows.ratings, pa.float32()),
            features.TIMESTAMP: _singletons(rows.timestamps, pa.int64()),
        }
        for table, ids in ((self._movies, rows.movie_ids), (self._users, rows.user_ids)):
            if table:
                columns.update(table.join(ids))
        return self._encoder.encode(pa.RecordBatch.from_arrays(list(columns.values()), list(columns)))


def _pair_groups(rows: Rows) -> Iterator[Tuple[int, Tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """(group, (pair hashes, file indices, lines)) of a chunk, grouped by hash for the shuffle."""
    hashes = rows.pair_hashes()
    group = hashes % DUPLICATE_CHECK_GROUPS
    for g in np.unique(group):
        selected = group == g
        yield int(g), (hashes[selected], np.full(selected.sum(), rows.file_index, np.int32),
                       rows.lines[selected])


def _line_pair(path: str, line: int) -> Tuple[str, str]:
    """(user_id, movie_id) of one line of a ratings file, read again to name a duplicate."""
    with fileio.open(path, "rb") as f:
        header = records.read_header(f.readline(), path)
        for number, raw in enumerate(f, start=2):
            if number == line:
                fields = records.split_fields(records.decode_line(raw, path, line), path, line)
                return tuple(fields[i].strip() for i in header.positions[:2])
    return ("", "")


def check_no_duplicates(group: Tuple[int, Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]]],
                        files: List[str]) -> None:
    """Raises RowError at the first repeated (user_id, movie_id) pair of one group, naming both lines."""
    _, parts = group
    hashes, file_indices, lines = (np.concatenate(column) for column in zip(*parts))
    order = np.lexsort((lines, file_indices, hashes))
    hashes, file_indices, lines = hashes[order], file_indices[order], lines[order]
    repeated = np.flatnonzero(hashes[1:] == hashes[:-1])
    for i in repeated:
        first, again = (files[file_indices[i]], int(lines[i])), (files[file_indices[i + 1]], int(lines[i + 1]))
        user, movie = _line_pair(*again)
        if _line_pair(*first) == (user, movie):  # not a hash collision
            where = f"line {first[1]}" if first[0] == again[0] else f"{first[0]}:{first[1]}"
            raise records.RowError(again[0], again[1], features.MOVIE_ID,
                                   f"duplicated row: user {user!r} already rated movie {movie!r} on {where}")


def list_files(input_base: str, patterns: List[str]) -> List[List[Tuple[int, str]]]:
    """The ratings files of each split pattern, each with an index unique across all of them.

    A file matched by two patterns would put its ratings in two splits: refused."""
    found = [sorted(fileio.glob(os.path.join(input_base, pattern))) for pattern in patterns]
    for pattern, files in zip(patterns, found):
        if not files:
            raise FileNotFoundError(f"no ratings files match {os.path.join(input_base, pattern)}")
    seen: Dict[str, str] = {}
    for pattern, files in zip(patterns, found):
        for path in files:
            if path in seen:
                raise ValueError(f"{path}: matched by the split patterns {seen[path]!r} and {pattern!r}: "
                                 "its ratings would be in two splits")
            seen[path] = pattern
    indexed, offset = [], 0
    for files in found:
        indexed.append(list(enumerate(files, start=offset)))
        offset += len(files)
    return indexed


class ReadRatings(beam.PTransform):
    """Parsed Rows of the given (index, path) files, chunk by chunk; the run fails at the first bad row."""

    def __init__(self, files: List[Tuple[int, str]], rating_range: Optional[Tuple[float, float]]):
        super().__init__()
        self._files, self._rating_range = files, rating_range

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        return (pipeline
                | "ListFiles" >> beam.Create(self._files)
                | "PlanChunks" >> beam.FlatMap(plan_chunks, self._rating_range)
                | "SpreadChunks" >> beam.Reshuffle()
                | "ParseChunks" >> beam.FlatMap(parse_chunk))


class CheckDuplicates(beam.PTransform):
    """Fails the run at a (user, movie) pair found twice among the Rows of all `files`
    (indexed as the Rows' file_index); given every split's Rows, no rating is in two splits."""

    def __init__(self, files: List[str]):
        super().__init__()
        self._files = files

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (rows
                | "PairHashes" >> beam.FlatMap(_pair_groups)
                | "GroupPairs" >> beam.GroupByKey()
                | "CheckDuplicates" >> beam.Map(check_no_duplicates, self._files))


def _rating_range(exec_properties: Dict[str, Any]) -> Optional[Tuple[float, float]]:
    return tuple(_ingest_settings(exec_properties).get("rating_range", ())) or None


@dataclasses.dataclass(frozen=True)
class SplitLayout:
    """Where examples go: split folders, and the cumulative hash buckets when one input is split."""
    uris: List[str]
    buckets: List[int]

    def partitions(self, rows: Rows) -> np.ndarray:
        """Each row's split index, by a hash of its (user_id, movie_id) pair.

        TFX hashes the serialized example, but tf.Example's feature map serializes in no fixed
        order, so the same data would split differently from run to run. A rating keyed by its
        pair (unique, see check_no_duplicates) stays in its split across reruns and new spans.
        """
        if not self.buckets:
            return np.zeros(len(rows.lines), np.int64)
        bucket = rows.pair_hashes() % np.uint64(self.buckets[-1])
        return np.searchsorted(np.array(self.buckets, np.uint64), bucket, side="right")


class _WriteChunkSplits(beam.DoFn):
    """Encodes a chunk and writes its examples straight into one gzipped TFRecord file per split.

    TFX's WriteSplit sends every example through a Reshuffle before writing, which the local
    runner holds in memory (~1.2 KB per example: 12 GB at 10M ratings); chunks are already spread
    over workers, so each writes its own files. A file is written under a temporary name and
    renamed, so a retried chunk replaces its file instead of adding a second copy.
    """

    def __init__(self, movies_path: Optional[str], users_path: Optional[str], layout: SplitLayout):
        super().__init__()
        self._paths, self._layout = (movies_path, users_path), layout

    def setup(self):
        self._encoder = _ExampleEncoder(*self._paths)

    def process(self, rows: Rows) -> None:
        records = self._encoder.encode(rows)
        partitions = self._layout.partitions(rows)
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL)
        for split, uri in enumerate(self._layout.uris):
            path = os.path.join(uri, f"{write_split.DEFAULT_TF_RECORD_FILE_NAME}-"
                                     f"{rows.file_index:05d}-{int(rows.lines[0]):012d}.gz")
            with tf.io.TFRecordWriter(f"{path}.tmp", options) as writer:
                for index in np.flatnonzero(partitions == split):
                    writer.write(records[index])
            fileio.rename(f"{path}.tmp", path, overwrite=True)


def write_examples(pipeline: beam.Pipeline, inputs: List[Tuple[str, SplitLayout]],
                   exec_properties: Dict[str, Any]) -> None:
    """ExampleGen's Beam graph: for each (split pattern, layout), the ratings read, checked and
    written chunk by chunk into their split files. Executor.Do runs it; it is also the graph a
    Dataflow dry run translates into a job (tests/e2e/test_cluster_recipes.py)."""
    settings = _ingest_settings(exec_properties)
    files = list_files(exec_properties[standard_component_specs.INPUT_BASE_KEY], [pattern for pattern, _ in inputs])
    rating_range = _rating_range(exec_properties)
    all_rows = []
    for index, ((_, layout), input_files) in enumerate(zip(inputs, files)):
        rows = pipeline | f"ReadRatings[{index}]" >> ReadRatings(input_files, rating_range)
        _ = rows | f"WriteSplits[{index}]" >> beam.ParDo(
            _WriteChunkSplits(settings.get("movies"), settings.get("users"), layout))
        all_rows.append(rows)
    _ = (all_rows | "AllSplits" >> beam.Flatten()
         | "CheckDuplicates" >> CheckDuplicates([path for split in files for _, path in split]))


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for the canonical `user_id,movie_id,rating,timestamp` CSV.

    `Do` is TFX's own but for the writing: each chunk is written to its split's files where it
    is encoded (see _WriteChunkSplits), and a hash split is keyed on the (user, movie) pair rather
    than the serialized bytes (see SplitLayout). Split names, file names and format are TFX's.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """TFX's hook for its base `Do`, one transform per split. This executor's `Do` reads every
        split in one Beam graph (one duplicate check across them) and writes each chunk where it
        is encoded (`write_examples`), so there is no per-split transform to return."""
        raise TypeError("RatingsExampleGen writes its splits in Executor.Do (write_examples); "
                        "it has no per-split transform")

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input())
        output_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact_utils.get_single_instance(examples).split_names = artifact_utils.encode_split_names(split_names)
        uris = [artifact_utils.get_split_uri(examples, name) for name in split_names]
        for uri in uris:
            fileio.makedirs(uri)
        hash_split = output_config.split_config
        if hash_split.partition_feature_name:
            raise ValueError("partition_feature_name is not supported: ratings split by (user_id, movie_id)")
        if hash_split.splits:
            buckets = list(itertools.accumulate(split.hash_buckets for split in hash_split.splits))
            inputs = [(input_config.splits[0].pattern, SplitLayout(uris, buckets))]
        else:
            inputs = [(split.pattern, SplitLayout([uri], []))
                      for split, uri in zip(input_config.splits, uris)]
        with self._make_beam_pipeline() as pipeline:
            write_examples(pipeline, inputs, exec_properties)
        settings = _ingest_settings(exec_properties)
        # The artifact properties TFX's own Do sets.
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        for artifact in examples:
            artifact.set_string_custom_property(SIDE_TABLES_PROPERTY, json.dumps(
                {key: settings.get(key) for key in SIDE_TABLES}))
            if payload_format:
                examples_utils.set_payload_format(artifact, payload_format)
            if file_format:
                examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))
