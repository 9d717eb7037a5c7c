# One command to set up and run the pipeline (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed
AIRFLOW_STAMP := $(VENV)/.installed-airflow
BENCHMARKS_STAMP := $(VENV)/.installed-benchmarks
DATA_DIR ?= data/movielens-100k
RUN_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers (one per CPU; tests/conftest.py says how tests are grouped onto them).
PYTEST_WORKERS ?= auto

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: setup run test test-fast data lock clean bench-serving bench-serving-load bench-catalog bench-accuracy bench-ranking bench-span-replay bench-scale bench-drift bench-orchestrators

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

# scikit-surprise on top: the accuracy benchmark's peers, and the tests' referee for the bias-only baseline.
$(BENCHMARKS_STAMP): requirements/benchmarks.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/benchmarks.txt
	touch $(BENCHMARKS_STAMP)

data: $(STAMP)
	test -f $(DATA_DIR)/ratings.csv || $(BIN)/movierec data fetch movielens-100k --dest $(DATA_DIR)

run: data
	$(BIN)/movierec run --data $(DATA_DIR)/ratings.csv --config configs/movielens-100k.yaml $(RUN_ARGS)

# The shared-metadata tests start a real MariaDB server (Debian's mariadb-server, not started as a
# service). Installed once, quietly; if the install fails the suite still runs and those tests fail
# quoting this log.
test: $(STAMP) $(AIRFLOW_STAMP) $(BENCHMARKS_STAMP)
	command -v mariadbd >/dev/null || PATH="$$PATH:/usr/sbin" command -v mariadbd >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server; } \
		> $(VENV)/mariadb-install.log 2>&1 || echo "mariadb-server not installed: see $(VENV)/mariadb-install.log"
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The fast loop: unit tests only, under a minute; `make test` runs everything. tests/unit is named so
# that the e2e modules are not even collected: importing them (Airflow's and the pipeline runs' helpers)
# costs each pytest process ~6 CPU-s before `-m "not e2e"` deselects their tests.
test-fast: $(STAMP) $(BENCHMARKS_STAMP)
	$(BIN)/python -m pytest tests/unit -m "not e2e" -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Latency of the model pushed by `make run`, in-process and through `movierec serve`.
bench-serving: $(STAMP)
	$(BIN)/python -m benchmarks.serving_latency --model-dir runs/serving

# 8 concurrent clients x 1000 mixed requests on the model pushed by `make run`, a new version pushed
# during the run, then malformed requests: requests/s, latency per request kind, errors, the swap.
bench-serving-load: $(STAMP)
	$(BIN)/python -m benchmarks.serving_load --model-dir runs/serving

# Recommendation over a catalogue of 100k+ movies, end to end: synthetic ratings (~6 min on a loaded
# 2-core machine), the real pipeline (~25 min at a load average of 9-17), its quality beside
# most-popular, implicit ALS and the planted ceiling, then serving latency and load on the pushed
# model. 350,000 movies are generated because the long tail leaves most unrated: 119,388 are rated
# and 118,107 reach the training vocabulary, the catalogue `recommend` ranks.
CATALOG_DIR ?= runs/catalog-100k
bench-catalog: $(STAMP)
	test -f $(CATALOG_DIR)/data/synth.json || $(BIN)/movierec data synth --ratings 1000000 --users 20000 \
		--movies 350000 --seed 0 --dest $(CATALOG_DIR)/data
	$(BIN)/movierec run --data $(CATALOG_DIR)/data --config configs/synthetic-scale.yaml \
		--pipeline-root $(CATALOG_DIR)/pipeline --serving-dir $(CATALOG_DIR)/serving
	$(BIN)/python -m benchmarks.ranking --config configs/synthetic-scale.yaml --run $(CATALOG_DIR)/pipeline
	$(BIN)/python -m benchmarks.serving_latency --model-dir $(CATALOG_DIR)/serving
	$(BIN)/python -m benchmarks.serving_load --model-dir $(CATALOG_DIR)/serving

# Our pipeline against scikit-surprise's BaselineOnly / SVD / SVD++ on the same MovieLens-100K rows.
bench-accuracy: data $(BENCHMARKS_STAMP)
	$(BIN)/python -m benchmarks.accuracy --data $(DATA_DIR)

# Our pipeline's recommend lists vs popularity, EASE and implicit ALS on the same MovieLens-100K rows.
bench-ranking: data
	$(BIN)/python -m benchmarks.ranking --data $(DATA_DIR)

# The full pipeline on synthetic 100k / 1M / 10M ratings: per-component time, peak RSS, rows/s.
SCALE_SIZES ?= 100k,1m,10m
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale --sizes $(SCALE_SIZES)

# MovieLens-100K replayed month by month through `movierec run`, one span per run.
bench-drift: data
	$(BIN)/python -m benchmarks.drift --data $(DATA_DIR)

bench-span-replay: data
	$(BIN)/python -m benchmarks.span_replay --data $(DATA_DIR)

# Two scheduled days (span 1, then span 2) under LocalDagRunner, BeamDagRunner and Airflow: wall time per day.
bench-orchestrators: data $(AIRFLOW_STAMP)
	$(BIN)/python -m benchmarks.orchestrators --data $(DATA_DIR)

# Re-resolve the lock after editing requirements/requirements.in.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile --python-version 3.10 --override requirements/overrides.txt \
		requirements/requirements.in -o $(LOCK)

clean:
	rm -rf $(VENV) build *.egg-info
