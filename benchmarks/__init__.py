"""Benchmarks: scripts that print numbers (speed and memory targets live here, not in tests).

Run them as modules (`python -m benchmarks.<name>`); like every entry point, they make
`tf.keras` resolve to Keras 2 before TensorFlow is imported.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
