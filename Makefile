# Scheduler: `make run` starts the service, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export FLASK_APP := wsgi

.PHONY: run test lint check-types check-alerts test-sqlite test-postgresql services services-brokers browser promtool wrk bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@# The `scheduler` command (scheduler_client.cli), its code read from this work tree.
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

## run: install, migrate, start the web app (127.0.0.1:$(PORT)) and the scheduler process
run: venv
	$(BIN)/flask db upgrade
	@# Ctrl-C (130) or SIGTERM (143) is how it ends; any other status is a process that failed.
	$(BIN)/honcho start --no-prefix -f Procfile -p $(PORT) 2>&1 || { rc=$$?; [ $$rc -eq 130 ] || [ $$rc -eq 143 ] || exit $$rc; }

## test: lint, types, then the whole suite on SQLite and on PostgreSQL
test: venv services browser lint check-types check-alerts test-sqlite test-postgresql

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types: venv
	$(BIN)/mypy

## check-alerts: the alert rules parse, and their unit tests (docs/prometheus-alerts.test.yml) pass
check-alerts: promtool
	promtool check rules docs/prometheus-alerts.yml
	promtool test rules docs/prometheus-alerts.test.yml

test-sqlite: venv services
	$(BIN)/pytest -q -n 2 --db=sqlite

test-postgresql: venv services  # the tests that reach a database (tests/conftest.py)
	$(BIN)/pytest -q -n 2 --db=postgresql -m "not browser"

## services: start PostgreSQL, Redis, RabbitMQ and NATS (JetStream) when they are not answering
services: services-brokers
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start"; exit 1
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "Redis did not start"; exit 1

# The broker targets' tests talk to RabbitMQ (:5672) and NATS with JetStream (:4222).
services-brokers:
	@$(PYTHON) -c 'import socket; socket.create_connection(("127.0.0.1", 5672), 2)' 2>/dev/null || rabbitmq-server -detached
	@$(PYTHON) -c 'import socket; socket.create_connection(("127.0.0.1", 4222), 2)' 2>/dev/null || start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
	@for i in $$(seq 60); do $(PYTHON) -c 'import socket; [socket.create_connection(("127.0.0.1", p), 2) for p in (5672, 4222)]' 2>/dev/null && exit 0; sleep 1; done; echo "RabbitMQ or NATS did not start"; exit 1

## browser: Debian's Chromium for the browser tests (never a downloaded browser)
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

## promtool: Debian's Prometheus package provides it (installed with apt when missing)
promtool:
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)

## wrk: the load generator of the bench's single creates (Debian's package, in C)
wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

bench: venv services wrk
	$(BIN)/python scripts/bench.py --write

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
