# One entry point for developers and CI. `make test` works on a clean clone as the only command.
VENV  := .venv
PY    := $(VENV)/bin/python
STACK := $(VENV)/bin/pd-stack
STAMP := $(VENV)/.installed
SEED  ?= 7

.PHONY: install up down status demo chaos test bench lint

install: $(STAMP)
	@$(PY) -m stack.prereqs

# Reinstall only when the dependency pins change (the stamp is older than them).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[local,dev]"
	touch $@

# `make up DURABLE=1`: the broker and Redis keep their data under .run/durable/ across restarts.
up: install
	@$(STACK) up $(if $(DURABLE),--durable)

down: $(STAMP)
	@$(STACK) down

status: $(STAMP)
	@$(STACK) status

demo: install
	@$(STACK) demo --seed $(SEED)

# The fault suite (README, "Fault suite"): on a stack of its own, under load; DURABLE=1: the broker
# restart, on Tansu keeping its records in moto's S3 server.
chaos: install
	@$(STACK) chaos $(foreach fault,$(WITHOUT),--without $(fault)) $(if $(DURABLE),--durable-broker)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

# The worker benches first, on brokers of their own, while the stack idles (after the ingest
# bench its workers work off what it posted). Then the pipeline, on a stack whose topics are
# still short: Tansu's fetches cost more as a partition grows (python -m bench.broker_fetch).
bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } \
		|| { echo "bench needs wrk: sudo apt-get install wrk"; exit 1; }
	$(PY) -m bench.scoring
	$(PY) -m bench.tagging
	$(PY) -m bench.pipeline
	$(PY) -m bench.ingest --pause-workers
	$(PY) -m bench.console

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
