PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# what `make demo` needs: the package with Milvus Lite, nothing else (no test tools, no PostgreSQL)
DEMO_STAMP := $(VENV)/.installed-demo
# what `make test` needs on top: every extra, the test tools, the docs site, Debian's PostgreSQL
STAMP := $(VENV)/.installed
# Azurite, the Azure Storage emulator the tests start (npm; Node.js 18+)
AZURITE_VERSION := 3.37.0
AZURITE_STAMP := .azurite/.installed-$(AZURITE_VERSION)
# Google's Pub/Sub emulator the tests start (Java; the Debian package google-cloud-cli-pubsub-emulator)
PUBSUB_EMULATOR := /usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator

# A real Milvus 2.3.5 server for the tests (PyPI's `milvus`), in its own virtualenv: it needs an old
# pymilvus and setuptools that the project's own environment must not have.
SERVER_VENV := .milvus-venv
SERVER_STAMP := $(SERVER_VENV)/.installed

# Airflow 3 for the example DAG's test (tests/test_examples.py), in its own virtualenv:
# apache-airflow-task-sdk brings all of Airflow (3.3.2), whose pins the project's environment must not
# share (about 3 min to install: 131 s for Airflow, 58 s for orchestrator and its dependencies)
AIRFLOW_VENV := .airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: install install-server install-airflow test lint unit docs fuzz demo bench clean

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[milvus]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml
	@# the tests' PostgreSQL server (tests/pgserver.py): Debian's server binaries, when missing
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	@# the report's browser tests (tests/test_report.py): Debian's Chromium, headless, when missing
	command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@# the Pub/Sub emulator (tests/test_gcs_queue.py): Google's Debian package, when missing; where Google's
	@# apt repository is not configured it cannot be had, and those tests are skipped saying so
	test -x $(PUBSUB_EMULATOR) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
		-y -qq google-cloud-cli-pubsub-emulator) || echo "google-cloud-cli-pubsub-emulator is not available"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# the distribution was named `orchestrator` before (a name PyPI gives another project)
	$(BIN)/pip uninstall --quiet --yes orchestrator 2>/dev/null || true
	$(BIN)/pip install --quiet -e '.[test,docs,milvus,azure,gcs-events,postgres]'
	touch $(STAMP) $(DEMO_STAMP)

$(AZURITE_STAMP):
	rm -rf .azurite
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $(AZURITE_STAMP)

install: $(STAMP) $(AZURITE_STAMP)

$(SERVER_STAMP):
	$(PYTHON) -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/pip install --quiet 'milvus==2.3.5' 'pymilvus==2.3.8' 'setuptools<70' 'marshmallow<4'
	touch $(SERVER_STAMP)

install-server: $(SERVER_STAMP)

$(AIRFLOW_STAMP): pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet 'apache-airflow-task-sdk==1.3.2' -e .
	touch $(AIRFLOW_STAMP)

install-airflow: $(AIRFLOW_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check orchestrator tests scripts bench examples
	$(BIN)/mypy

unit: $(STAMP) $(AZURITE_STAMP) $(SERVER_STAMP) $(AIRFLOW_STAMP)
	$(BIN)/pytest -q -n 2

# the documentation site, strict: a broken link or a page missing from the nav fails; the reference
# pages are filled from the code while it builds (scripts/docs_hooks.py)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint docs unit

# the property-based tests with many more examples than `make test` runs (several minutes)
fuzz: $(STAMP)
	ORCHESTRATOR_FUZZ=fuzz $(BIN)/pytest -q -p no:xdist tests/test_fuzz.py

demo: $(DEMO_STAMP)
	$(BIN)/python scripts/make_demo_data.py demo-data/lake
	$(BIN)/orchestrator run manifests/demo.yaml --wait
	$(BIN)/orchestrator status manifests/demo.yaml
	$(BIN)/python scripts/demo_search.py manifests/demo.yaml

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(SERVER_VENV) $(AIRFLOW_VENV) .azurite .mypy_cache .ruff_cache .pytest_cache build dist site *.egg-info demo-data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
