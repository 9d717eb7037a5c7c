# The image Kubeflow / Vertex pipelines run every component in: the locked stack plus movierec.
#   docker build -t <registry>/movierec:<tag> .
FROM python:3.11-slim

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /movierec
COPY requirements/lock.txt requirements/lock.txt
# TFX 1.16 declares Python <3.11 but its wheels work on 3.11: install the lock as resolved.
RUN pip install --no-cache-dir --no-deps --ignore-requires-python -r requirements/lock.txt

COPY setup.py README.md ./
COPY components components
COPY models models
COPY pipeline pipeline
COPY ratings ratings
COPY serving serving
COPY movierec movierec
RUN pip install --no-cache-dir --no-deps .
# No entry point: the compiled pipeline JSON names TFX's launcher command for each component.
