"""The Transform and Trainer module code: preprocessing_fn, the Keras models, scoring and export.

tensorflow-transform 1.16 is Keras-2 only, so `tf.keras` must resolve to tf-keras. Entry points set
this too; setting it here covers Beam workers that import this package in a fresh process.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
