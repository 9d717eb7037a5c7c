"""The hand-curated data schema, shipped as package data so Beam workers and installs find it too."""
import pathlib

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent
SCHEMA_FILE = SCHEMA_DIR / "schema.pbtxt"


def load_schema(path: pathlib.Path = SCHEMA_FILE):
    """Reads a schema.pbtxt into a tensorflow_metadata Schema proto."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(pathlib.Path(path).read_text(), schema_pb2.Schema())


def float_range(feature_name: str, path: pathlib.Path = SCHEMA_FILE):
    """The (min, max) float_domain the schema declares for a feature."""
    (feature,) = [f for f in load_schema(path).feature if f.name == feature_name]
    return feature.float_domain.min, feature.float_domain.max
