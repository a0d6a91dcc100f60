# `make run` and `make test` do all the set-up: virtualenv, pinned requirements, a database.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt client/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test unit lint bench bench-csv bench-exports bench-outcomes bench-catalog bench-client bench-ingest bench-galera bench-cache soak screenshots bench-feed cluster cluster-stop galera galera-stop db-stop clean

$(STAMP): requirements.txt requirements-dev.txt client/pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@python3 -m venv $(VENV) 2>/dev/null || { \
	  [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

run: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh --serve) && echo "gateway on $${HOST:-127.0.0.1}:$${PORT:-8000}" && \
	  DATABASE_URL="$$url" exec $(PY) -m app

test: $(STAMP)
	@scripts/ensure-chromium.sh
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/crud.py

bench-csv: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/csv.py

bench-exports: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/exports.py

bench-outcomes: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/outcomes.py

bench-catalog: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/catalog.py

bench-client: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/client.py

bench-ingest: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/ingest.py

bench-cache: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/cache.py

bench-galera: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/galera.py

bench-feed: $(STAMP)
	$(PY) bench/feed.py

screenshots: $(STAMP)
	@scripts/ensure-chromium.sh
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) scripts/console_screenshots.py

soak: $(STAMP)
	@url=$$(PYTHON=$(PY) scripts/ensure-db.sh) && DATABASE_URL="$$url" $(PY) bench/soak.py

cluster: $(STAMP)
	@PYTHON=$(PY) deploy/cluster.sh start $${N:-3}

cluster-stop:
	@deploy/cluster.sh stop

# A 3-node MariaDB Galera cluster on loopback (.data/galera, ports from GALERA_BASE_PORT=4600); prints
# its DATABASE_URL: `DATABASE_URL=$$(make -s galera) make run`.
galera: $(STAMP)
	@$(PY) scripts/galera.py start $${N:-3}

galera-stop:
	@[ -x $(PY) ] && $(PY) scripts/galera.py stop || true

db-stop:
	@[ -f .data/mariadb.pid ] && kill "$$(cat .data/mariadb.pid)" && echo "private MariaDB stopped" || true

clean: db-stop galera-stop
	rm -rf $(VENV) .data .pytest_cache
