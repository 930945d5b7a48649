# whatsbot — `make run` starts the whole product, `make test` runs the suite.
# Both set up what a fresh machine lacks (virtualenv, packages, database, browser).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

# run, setup and check use DATABASE_URL's database, or (empty) the private PostgreSQL server
# under var/postgres, started around each of them and stopped after (whatsbot/localdb.py).
DB := scripts/with-db

# Tests run against real PostgreSQL and Redis (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/whatsbot
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test setup install services browser check bench-webhook bench-agent bench-console clean

run: install .env
	@$(DB) scripts/run-all

# Migrate and bootstrap, without starting anything (scripts/setup; `make run` does it too).
setup: install .env
	@$(DB) scripts/setup

install: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

.env:
	@scripts/make-env > .env
	@echo "Wrote .env (DEBUG on; no DATABASE_URL: a private PostgreSQL under var/postgres; file broker). Edit it to connect WhatsApp and OpenAI."

services:
	@scripts/services-up

browser:
	@scripts/browser-install

test: install services browser
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) WHATSBOT_TESTING=1 \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

# Through $(DB): the checks that read the database (active channels without an app secret)
# would otherwise find no server and pass.
check: install
	DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))') ALLOWED_HOSTS=example.com \
		$(DB) $(PY) manage.py check --deploy --fail-level WARNING

bench-webhook: install services
	$(PY) bench/webhook_load.py $(BENCH_ARGS)

bench-console: install services
	$(PY) bench/console_load.py $(BENCH_ARGS)

bench-agent: install services
	$(PY) bench/agent_load.py $(BENCH_ARGS)

clean:
	rm -rf var/ $(VENV)
