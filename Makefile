# One command to set up and run the pipeline (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed
AIRFLOW_STAMP := $(VENV)/.installed-airflow
DATA_DIR ?= data/movielens-100k
RUN_ARGS ?=
PYTEST_ARGS ?=

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: setup run test data lock clean bench-serving bench-accuracy bench-span-replay

setup: $(STAMP)

# Reinstalls only when the lock or setup.py changed. TFX 1.16 declares Python <3.11 but its wheels work
# on 3.11: the lock is resolved for 3.10 and installed as-is, without re-resolving (see README).
$(STAMP): $(LOCK) setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Airflow (for the DAG and its test) on top of the lock; not needed to run the pipeline.
$(AIRFLOW_STAMP): requirements/airflow.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/airflow.txt
	touch $(AIRFLOW_STAMP)

data: $(STAMP)
	test -f $(DATA_DIR)/ratings.csv || $(BIN)/movierec data fetch movielens-100k --dest $(DATA_DIR)

run: data
	$(BIN)/movierec run --data $(DATA_DIR)/ratings.csv --config configs/movielens-100k.yaml $(RUN_ARGS)

test: $(STAMP) $(AIRFLOW_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Latency of the model pushed by `make run`, in-process and through `movierec serve`.
bench-serving: $(STAMP)
	$(BIN)/python -m benchmarks.serving_latency --model-dir runs/serving

# Our pipeline against scikit-surprise's BaselineOnly / SVD / SVD++ on the same MovieLens-100K rows.
bench-accuracy: data
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/benchmarks.txt
	$(BIN)/python -m benchmarks.accuracy --data $(DATA_DIR)

# MovieLens-100K replayed month by month through `movierec run`, one span per run.
bench-span-replay: data
	$(BIN)/python -m benchmarks.span_replay --data $(DATA_DIR)

# Re-resolve the lock after editing requirements/requirements.in.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile --python-version 3.10 --override requirements/overrides.txt \
		requirements/requirements.in -o $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info
