"""The learned movie embeddings as a product: TensorBoard projector files and a 2-D genre map.

Written by the Trainer beside its TensorBoard logs (`<model_run>/`), so
`tensorboard --logdir <model_run>` shows the vectors in the projector with titles and genres.
`genre_agreement` measures whether nearest neighbours share genres (a sanity check).
"""
import io
import os
from typing import Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from tensorboard.plugins import projector  # noqa: E402

from ratings import features  # noqa: E402
from models.catalog import Catalog  # noqa: E402

VECTORS_FILE, METADATA_FILE = "movie_vectors.tsv", "movie_metadata.tsv"
# The map shows the most-rated movies (vocabulary order), enough to read, few enough to draw.
MAP_MOVIES = 1500


def _text(value: bytes) -> str:
    return value.decode("utf-8").replace("\t", " ").replace("\n", " ")


def write_projector(log_dir: str, catalog: Catalog, vectors: np.ndarray) -> None:
    """movie_vectors.tsv, movie_metadata.tsv (id, title, genres) and projector_config.pbtxt."""
    tf.io.gfile.makedirs(log_dir)
    with tf.io.gfile.GFile(os.path.join(log_dir, VECTORS_FILE), "w") as f:
        np.savetxt(f, vectors, delimiter="\t", fmt="%.5f")
    with tf.io.gfile.GFile(os.path.join(log_dir, METADATA_FILE), "w") as f:
        f.write(f"{features.MOVIE_ID}\t{features.TITLE}\t{features.GENRES}\n")
        for row in zip(catalog.movie_ids, catalog.titles, catalog.genres):
            f.write("\t".join(_text(v) for v in row) + "\n")
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "movie_embeddings"
    embedding.tensor_path, embedding.metadata_path = VECTORS_FILE, METADATA_FILE
    projector.visualize_embeddings(log_dir, config)


def primary_genre(genres: bytes) -> str:
    return _text(genres).split(features.GENRE_SEPARATOR)[0] or "unknown"


def write_map(path: str, catalog: Catalog, vectors: np.ndarray) -> None:
    """A PNG scatter of the movie embeddings projected to 2-D (PCA), coloured by first genre."""
    shown = min(MAP_MOVIES, len(vectors))
    points = PCA(n_components=2, random_state=0).fit_transform(vectors[:shown])
    genres = np.array([primary_genre(g) for g in catalog.genres[:shown]])
    figure, axes = plt.subplots(figsize=(11, 8), dpi=110)
    for genre in sorted(set(genres), key=lambda g: -np.sum(genres == g)):
        mask = genres == genre
        axes.scatter(points[mask, 0], points[mask, 1], s=9, alpha=0.7, label=f"{genre} ({mask.sum()})")
    for index in range(min(15, shown)):  # label the most-rated movies
        axes.annotate(_text(catalog.titles[index])[:28], points[index], fontsize=7, alpha=0.8)
    axes.set_title(f"Movie embeddings, {shown} most-rated movies (PCA), coloured by first genre")
    axes.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png")
    plt.close(figure)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(png.getvalue())


def genre_agreement(vectors: np.ndarray, genres: Sequence[bytes], queries: Sequence[int], k: int,
                    seed: int = 0) -> Tuple[float, float]:
    """(share of the k cosine-nearest neighbours that share a genre with their query,
    the same share for k random movies): the first should be clearly higher."""
    sets = [set(_text(g).split(features.GENRE_SEPARATOR)) - {""} for g in genres]
    normalized = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    near = random = 0
    for query in queries:
        similarity = normalized @ normalized[query]
        similarity[query] = -np.inf
        neighbours = np.argsort(-similarity)[:k]
        others = rng.choice(np.delete(np.arange(len(vectors)), query), size=k, replace=False)
        near += sum(bool(sets[query] & sets[n]) for n in neighbours)
        random += sum(bool(sets[query] & sets[r]) for r in others)
    total = k * len(queries)
    return near / total, random / total
