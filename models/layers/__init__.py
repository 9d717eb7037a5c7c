"""Keras layers of the rating model (ID and side-feature embeddings, biases, the AutoRec blend)
and the per-ID side-feature tables they hold."""
