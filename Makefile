# Bitscale: `make run` and `make test` work on a fresh machine (they create .venv on first use).
PYTHON ?= python3
PY     := .venv/bin/python
CELERY := .venv/bin/celery -A config
PORT   ?= 8000
# settings.SITE_URL, printed by load_demo, follows PORT
export PORT
WORKER_CONCURRENCY ?= 2

.PHONY: run worker test lint format typecheck check bench bench-server-cpu bench-mlflow-cpu services clean

.venv/.installed: pyproject.toml constraints.txt client/pyproject.toml
	@echo "[bitscale] installing the pinned dependencies into .venv (first run only; 1-3 minutes, most of it downloads)"
	test -x $(PY) || $(PYTHON) -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]" -e "./client[mlflow]"
	touch $@

# Web server, one Celery worker (both queues) and beat; Ctrl-C (or a SIGTERM to the recipe's shell) stops all
# three. The worker is stopped first and waited for, so it shuts its pool down itself (a SIGTERM to the whole
# group at once kills the pool's processes under the worker, which then hangs at exit), then the rest of the group.
# The workers log warnings only (RUN_LOG_LEVEL=info shows every task), and demo_status prints where to go (admin, login, the demo key, saved in
# var/demo.env) once the server answers, then follows the demo's fits and prints it again when they are done.
# Web and workers share a file cache in var/cache, so a worker renders each new fit's plots for the admin.
RUN_LOG_LEVEL ?= warning
run: export CACHE_URL ?= filecache://$(CURDIR)/var/cache
run: .venv/.installed
	@mkdir -p var/broker var/cache
	@echo "[bitscale] migrating db.sqlite3"
	@$(PY) manage.py migrate --noinput -v 0
	@echo "[bitscale] loading the demo data when missing (about 20 s the first time)"
	@$(PY) manage.py load_demo --if-missing --credentials-file var/demo.env
	@echo "[bitscale] starting the web server, a worker and beat (Ctrl-C stops them)"
	@trap 'trap - INT TERM EXIT; kill $$worker $$beat 2>/dev/null; wait $$worker; kill 0' INT TERM EXIT; \
	  $(CELERY) worker -Q celery,fits --concurrency=$(WORKER_CONCURRENCY) -l $(RUN_LOG_LEVEL) & worker=$$!; \
	  $(CELERY) beat -l $(RUN_LOG_LEVEL) -s var/celerybeat-schedule & beat=$$!; \
	  $(PY) manage.py demo_status --wait-for-server --follow --credentials-file var/demo.env & \
	  $(PY) manage.py runserver 0.0.0.0:$(PORT) & wait $$!

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

# Server CPU per logged run (web processes + their PostgreSQL backends): Bitscale alone, with the native post.
bench-server-cpu: .venv/.installed
	$(PY) bench/server_cpu.py

# The same side by side with MLflow's own server: MLFLOW_VENV is a virtualenv with mlflow==3.17.2,
# psycopg2-binary and psycopg[binary] (SQLAlchemy 2.1 reaches PostgreSQL through psycopg 3). Prints the ratio.
SHARED ?= ../shared
MLFLOW_VENV ?= /tmp/mlflow-venv
bench-mlflow-cpu: .venv/.installed
	$(MLFLOW_VENV)/bin/python $(SHARED)/tools/server_cpu.py --project . --mlflow-venv $(MLFLOW_VENV) 2>&1 \
		| grep -E 'ms/run|MLflow /|did not'

# db and redis read no secret, but compose checks every variable of the file: give it a throwaway one.
services:
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-unused-by-db-and-redis} docker compose up -d db redis

clean:
	rm -rf .venv var db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
