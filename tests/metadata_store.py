"""An in-memory ML Metadata store (`fake_database`) holding artifacts as TFX puts them, for tests
of what resolvers and gates read back: the IDs are the ones ML Metadata hands out."""
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.types import artifact_utils


class MemoryStore:

    def __init__(self):
        config = metadata_store_pb2.ConnectionConfig()
        config.fake_database.SetInParent()
        self.mlmd = metadata_store.MetadataStore(config)

    def add(self, artifact: types.Artifact) -> types.Artifact:
        """Stores an artifact (its type first); the artifact gets its ID."""
        artifact.type_id = self.mlmd.put_artifact_type(artifact.artifact_type)
        [artifact.id] = self.mlmd.put_artifacts([artifact.mlmd_artifact])
        return artifact

    def read(self, artifact_class):
        """Every artifact of a type, as the store gives them back (what a resolver's channel holds)."""
        try:
            artifact_type = self.mlmd.get_artifact_type(artifact_class.TYPE_NAME)
        except errors.NotFoundError:  # none made yet
            return []
        return [artifact_utils.deserialize_artifact(artifact_type, a)
                for a in self.mlmd.get_artifacts_by_type(artifact_class.TYPE_NAME)]
