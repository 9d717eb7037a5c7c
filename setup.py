"""movierec: a TFX pipeline that learns user and movie embeddings and serves them with TF Serving.

Also used as Beam's `--setup_file`, so remote workers get the same packages as the launcher.
"""
import setuptools

setuptools.setup(
    name="movierec",
    version="0.1.0",
    description="TFX pipeline for movie-rating embeddings, served by TensorFlow Serving.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["movierec*", "pipeline*", "components*", "models*", "ratings*", "serving*"]),
    package_data={"ratings.schema": ["*.pbtxt"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-serving-api==2.16.1",
        "apache-beam[gcp]==2.59.0",
        "click>=8.1",
        "pyyaml>=6.0",
        "matplotlib>=3.8",
        "tabulate>=0.9",
    ],
    # `pip install -e .[benchmarks]`: the classical baselines of benchmarks/accuracy.py.
    extras_require={"benchmarks": ["scikit-surprise==1.1.5"]},
    entry_points={"console_scripts": ["movierec=movierec.cli:entry"]},
)
