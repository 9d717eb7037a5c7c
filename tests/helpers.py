"""Helpers shared by several test modules, in one place (a test module never imports another's).

Larger fixtures have rooms of their own beside this module: real servers (serving_server.py,
mariadb.py, object_store.py), pipeline runs (pipeline_runs.py), tf.Transform runs (transform.py),
the CLI (cli.py).
"""
import csv
import os
import pathlib

import pandas as pd
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
# Not tfx.v1, whose extensions import the Google Cloud clients: seconds of CPU in every test process.
from tfx import version as tfx_version
from tfx.dsl.components.common.importer import Importer
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.example_gen import executor as example_gen
from components.infra_validator.component import InfraValidator
from components.pusher import executor as pusher
from components.pusher.component import AtomicPusher
from ratings import features, records
from pipeline import configs

REPO = pathlib.Path(__file__).resolve().parents[1]
# Our top-level packages, lowest floor first (setup.py installs these; tests/unit/test_layout.py checks their imports).
PACKAGES = ("ratings", "models", "components", "pipeline", "movierec", "serving")


def write_csv(path: pathlib.Path, header: str, rows) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# ExampleGen's executor, run in-process on files.
def run_executor(input_base, input_splits, split_config=None, movies=None, users=None):
    """{split: [serialized examples]} and the files written, from the executor's Do (side tables
    `movies` / `users` joined when given)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(input_base / "output")
    properties = {
        specs.INPUT_BASE_KEY: str(input_base),
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in input_splits])),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output(split_config=split_config)),
        specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(example_gen.ingest_config(movies, users, (0.5, 5.0), "test")),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    example_gen.Executor().Do({}, {specs.EXAMPLES_KEY: [examples]}, properties)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
    by_split, files = {}, {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        files[split] = sorted(tf.io.gfile.glob(f"{artifact_utils.get_split_uri([examples], split)}/*"))
        by_split[split] = [r.numpy() for r in tf.data.TFRecordDataset(files[split], compression_type="GZIP")]
    return by_split, files


def pair(record: bytes):
    feature = tf.train.Example.FromString(record).features.feature
    return feature[features.USER_ID].bytes_list.value[0], feature[features.MOVIE_ID].bytes_list.value[0]


# Ratings files as real tools write them (test_csv_variants.py, the e2e run on them).
COLUMNS = list(features.RATINGS_COLUMNS)
RATING_RANGE = (0.5, 5.0)
# IDs that differ only in leading zeros, hold commas, quotes, spaces or non-ASCII letters.
ROWS = [("007", "m1", 4.0, 881250949), ("7", "m1", 3.5, 881250950), ("u,comma", 'say "hi"', 5.0, 881250951),
        ("Amélie fan", "Amélie (2001)", 2.0, 881250952), ("7", "007", 1.0, 881250953), ("u 9", "m,2", 0.5, 1)]


def referee(path: pathlib.Path, names=records.CANONICAL_NAMES):
    """(user, movie, rating, timestamp) of each row, as csv.reader reads the file."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader)]
        at = [header.index(name) for name in names]
        return [(row[at[0]].strip(), row[at[1]].strip(), float(row[at[2]]), int(float(row[at[3]])))
                for row in reader if row]


def python_csv(path: pathlib.Path, rows=ROWS) -> pathlib.Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)  # the default dialect: CRLF, minimal quoting
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


def pandas_csv(path: pathlib.Path, rows=ROWS) -> pathlib.Path:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[["timestamp", "movie_id", "rating", "user_id"]].to_csv(path)  # with its index column
    return path


def excel_csv(path: pathlib.Path, rows=ROWS) -> pathlib.Path:
    """Excel's CSV UTF-8 layout, field by field: BOM, CRLF, quotes only around commas and quotes."""
    def field(value) -> str:
        text = format(value, "g") if isinstance(value, float) else str(value)
        return f'"{text.replace(chr(34), chr(34) * 2)}"' if "," in text or '"' in text else text
    lines = [",".join(COLUMNS), *(",".join(map(field, row)) for row in rows)]
    path.write_bytes(b"\xef\xbb\xbf" + "".join(f"{line}\r\n" for line in lines).encode("utf-8"))
    return path


def hand_edited(path: pathlib.Path, rows=ROWS) -> pathlib.Path:
    """Mixed line ends, spaces around names and values, whole-second float timestamps, a trailing blank line."""
    lines = ["user_id , movie_id,rating , timestamp"] + [
        f" {user}  ,{movie}, {rating:g} ,{timestamp}{'.0' * (i % 2)}" for i, (user, movie, rating, timestamp) in
        enumerate(rows) if "," not in user + movie and '"' not in user + movie]
    path.write_bytes("".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines)).encode() + b"\r\n")
    return path


WRITERS = {"python-csv": python_csv, "pandas": pandas_csv, "excel-csv-utf8": excel_csv, "hand-edited": hand_edited}


# Pushing.
def fake_saved_model(path, fingerprint: bytes, variables_size: int = 0):
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"graph")
    with open(os.path.join(path, pusher.FINGERPRINT_FILE), "wb") as f:
        f.write(fingerprint)
    if variables_size:
        with open(os.path.join(path, "variables", "variables.data-00000-of-00001"), "wb") as f:
            f.write(os.urandom(variables_size))


def push_pipeline(config: configs.PipelineConfig, model_uri: str, infra_validation: bool = False) -> Pipeline:
    """The pipeline's Pusher on an imported, blessed model (a Trainer's model carries its TFX version);
    its infra blessing imported as passed, or with `infra_validation` from the real InfraValidator."""
    model = Importer(
        source_uri=model_uri, artifact_type=standard_artifacts.Model,
        custom_properties={standard_artifact_utils.ARTIFACT_TFX_VERSION_CUSTOM_PROPERTY_KEY: tfx_version.__version__},
    ).with_id("model")
    blessing = Importer(source_uri=model_uri, artifact_type=standard_artifacts.ModelBlessing,
                                custom_properties={"blessed": 1}).with_id("blessing")
    infra = (InfraValidator(model=model.outputs["result"], model_blessing=blessing.outputs["result"],
                            model_name=config.model_name, model_server=config.model_server) if infra_validation
             else Importer(source_uri=model_uri, artifact_type=standard_artifacts.InfraBlessing,
                                   custom_properties={"blessed": 1}).with_id("infra_blessing"))
    infra_blessing = infra.outputs["blessing" if infra_validation else "result"]
    return Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=[model, blessing, infra, AtomicPusher(model.outputs["result"], blessing.outputs["result"],
                                                         infra_blessing, config.push_base).with_id("Pusher")],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            config.metadata_file))


def raw_tensor(dtype, shape, field=None, values=(), content=b"") -> tensor_pb2.TensorProto:
    """A TensorProto as a client may hand-write it: any shape, values in `field`, or `content`
    (tensor_content), whether or not they agree with the shape."""
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_content=content)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape)
    if field:
        getattr(proto, field).extend(values)
    return proto
