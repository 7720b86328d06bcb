# Bitscale: `make run` and `make test` work on a fresh machine (they create .venv on first use).
PYTHON ?= python3
PY     := .venv/bin/python
CELERY := .venv/bin/celery -A config
PORT   ?= 8000
# settings.SITE_URL, printed by load_demo, follows PORT
export PORT
WORKER_CONCURRENCY ?= 2

.PHONY: run worker test lint format typecheck check bench services clean

.venv/.installed: pyproject.toml constraints.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]" -e "./client[mlflow]"
	touch $@

# Web server, one Celery worker (both queues) and beat; Ctrl-C stops all three.
run: .venv/.installed
	mkdir -p var/broker
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo --if-missing
	trap 'kill 0' INT TERM EXIT; \
	  $(CELERY) worker -Q celery,fits --concurrency=$(WORKER_CONCURRENCY) -l info & \
	  $(CELERY) beat -l info -s var/celerybeat-schedule & \
	  $(PY) manage.py runserver 0.0.0.0:$(PORT)

worker: .venv/.installed
	$(CELERY) worker -Q celery,fits --concurrency=$(WORKER_CONCURRENCY) -l info

# The suite in TEST_PROCESSES processes (pytest-xdist; each has its own test database and redis-server), then the
# few tests that must run alone (they restart a shared service). PYTEST_ARGS go to both runs.
TEST_PROCESSES ?= 2
test: .venv/.installed
	$(PY) -m pytest -n $(TEST_PROCESSES) -m "not serial" $(PYTEST_ARGS) || { s=$$?; [ $$s -ne 5 ] || echo "pytest collected no tests" >&2; exit $$s; }
	$(PY) -m pytest -m serial $(PYTEST_ARGS) || { s=$$?; [ $$s -eq 5 ] || exit $$s; }

lint: .venv/.installed
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: .venv/.installed
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

typecheck: .venv/.installed
	.venv/bin/mypy .

check: .venv/.installed
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

bench: .venv/.installed
	$(PY) bench/ingest.py

# db and redis read no secret, but compose checks every variable of the file: give it a throwaway one.
services:
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-unused-by-db-and-redis} docker compose up -d db redis

clean:
	rm -rf .venv var db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
