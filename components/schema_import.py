"""ImportSchemaGen that runs again when the schema file's content changes, not only its path.

TFX reuses a cached execution when a component's parameters are unchanged. Stock
ImportSchemaGen's only parameter is the file path, so after `ratings/schema/schema.pbtxt` is edited the
next run would silently validate against the old, cached schema. Adding the content's digest
as a parameter makes an edit a new execution.
"""
import hashlib

import tensorflow as tf
from tfx import types
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

CONTENT_DIGEST = "content_digest"


class SchemaImportSpec(ComponentSpec):
    PARAMETERS = {
        standard_component_specs.SCHEMA_FILE_KEY: ExecutionParameter(type=str),
        CONTENT_DIGEST: ExecutionParameter(type=str),
    }
    INPUTS = {}
    OUTPUTS = {standard_component_specs.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class SchemaImport(base_component.BaseComponent):
    """Copies a curated schema file into the pipeline, keyed by path and content."""

    SPEC_CLASS = SchemaImportSpec
    EXECUTOR_SPEC = ImportSchemaGen.EXECUTOR_SPEC

    def __init__(self, schema_file: str, content_of: str = ""):
        """`content_of`: a copy of the file to fingerprint when `schema_file` is only readable
        where the pipeline runs (inside the container image); defaults to `schema_file`."""
        with tf.io.gfile.GFile(content_of or schema_file, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        super().__init__(spec=SchemaImportSpec(
            schema_file=schema_file, content_digest=digest,
            schema=types.Channel(type=standard_artifacts.Schema)))
