"""Files the Trainer writes beside its TensorBoard logs (`<model_run>/`), read back by the run
summary and report, and beside its SavedModel: a module of names only, so readers do not import
TensorFlow's model stack."""

HISTORY_FILE = "history.json"  # per-epoch Keras metrics
EXAMPLES_PER_SECOND = "examples_per_second"  # a key of HISTORY_FILE
MAP_FILE = "movie_map.png"  # 2-D map of the movie vectors
# In the Model artifact, beside Format-Serving: the catalogue the model was trained with
# (catalog.save), from which components/servable_export rebuilds it for the servable it pushes.
CATALOG_FILE = "catalog.npz"
