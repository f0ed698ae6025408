# The README's two commands: `make run` and `make test`. Everything installs into .venv.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-fast typecheck bench soak lint format vendor

# After the pinned requirements, the project itself, editable and without dependencies (the pins
# are the truth): `bioweb` and `bench` then import from scripts, tests and gunicorn, no sys.path edits.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install  ## apply migrations, then serve on http://127.0.0.1:8000
	$(VENV)/bin/flask --app app db upgrade
	$(VENV)/bin/gunicorn --config gunicorn.conf.py app:app

# Markers (pyproject.toml): browser, server (starts gunicorn), postgres, fuzz, slow.
FAST   := not (browser or server or postgres or fuzz or slow)

test: install lint  ## the whole gate (CI): lint and the type check, then every test, SQLite and PostgreSQL, on all cores
	$(PY) -m pytest -n auto --dist loadgroup

test-fast: install  ## the inner loop: everything not marked, SQLite only, about two minutes
	$(PY) -m pytest -m "$(FAST)"

bench: install  ## throughput, scale and memory benchmarks (not tests)
	$(PY) -m bench.run

soak: install  ## 32 clients on a mixed workload for 10 minutes (not part of make test)
	$(PY) -m bench.soak

typecheck: install  ## mypy, strict on services, API, OAuth and the bearer check (pyproject.toml [tool.mypy])
	$(VENV)/bin/mypy

lint: install typecheck
	$(VENV)/bin/ruff check bioweb tests bench app.py
	$(VENV)/bin/ruff format --check bioweb tests bench app.py

format: install
	$(VENV)/bin/ruff format bioweb tests bench app.py
	$(VENV)/bin/ruff check --fix bioweb tests bench app.py

# Browser libraries (uPlot for the dashboard's charts, Swagger UI for /api/docs) come from npm
# at the exact versions of vendor/package.json. The pin lives there, with
# vendor/package-lock.json, rather than in a variable here: `npm ci` then checks each tarball
# against the lockfile's sha512 integrity hash, so a re-fetch is verified, and a version bump
# is one `npm install uplot@X --package-lock-only` in vendor/ (Dependabot and `npm outdated` read the same files).
# The built files, the licence and a VERSION land in static/vendor/ and are committed:
# `make run` on a fresh machine needs no Node. Only this target needs Node and npm.
VENDOR_UPLOT := static/vendor/uplot
# Swagger UI (the /api/docs reference page): the browser bundle and its stylesheet, with the
# Apache-2.0 LICENSE and NOTICE and the licences of the code the bundle contains. Not the
# standalone preset (its logo is an inline <style>, which the CSP refuses) nor the source maps.
VENDOR_SWAGGER := static/vendor/swagger-ui

vendor:  ## re-fetch the pinned browser libraries (needs node and npm) into static/vendor/
	@command -v npm >/dev/null || { echo "make vendor needs npm (Node.js 18 or later)"; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp vendor/package.json vendor/package-lock.json "$$tmp"/; \
	(cd "$$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); \
	src="$$tmp/node_modules/uplot"; \
	version=$$(node -p "require('$$src/package.json').version"); \
	rm -rf $(VENDOR_UPLOT) && mkdir -p $(VENDOR_UPLOT); \
	cp "$$src/dist/uPlot.iife.min.js" "$$src/dist/uPlot.min.css" "$$src/LICENSE" $(VENDOR_UPLOT)/; \
	echo "$$version" > $(VENDOR_UPLOT)/VERSION; \
	printf '%s\n' \
	  "uPlot $$version (MIT licence, see LICENSE), by Leon Sorokin: https://github.com/leeoniya/uPlot" \
	  "From the npm package uplot@$$version (https://www.npmjs.com/package/uplot), its dist/ files" \
	  "unchanged: uPlot.iife.min.js, uPlot.min.css." \
	  "" \
	  "Do not edit these files: the version is pinned in vendor/package.json and" \
	  "vendor/package-lock.json (with its integrity hash); run make vendor to fetch it again." \
	  > $(VENDOR_UPLOT)/NOTICE; \
	echo "uPlot $$version -> $(VENDOR_UPLOT)"; \
	src="$$tmp/node_modules/swagger-ui-dist"; \
	version=$$(node -p "require('$$src/package.json').version"); \
	rm -rf $(VENDOR_SWAGGER) && mkdir -p $(VENDOR_SWAGGER); \
	cp "$$src/swagger-ui-bundle.js" "$$src/swagger-ui-bundle.js.LICENSE.txt" "$$src/swagger-ui.css" \
	  "$$src/LICENSE" "$$src/NOTICE" $(VENDOR_SWAGGER)/; \
	echo "$$version" > $(VENDOR_SWAGGER)/VERSION; \
	printf '%s\n' \
	  "Swagger UI $$version (Apache License 2.0, see LICENSE and NOTICE), by SmartBear Software:" \
	  "https://github.com/swagger-api/swagger-ui. The licences of the libraries bundled into" \
	  "swagger-ui-bundle.js are in swagger-ui-bundle.js.LICENSE.txt." \
	  "From the npm package swagger-ui-dist@$$version (https://www.npmjs.com/package/swagger-ui-dist)," \
	  "files unchanged: swagger-ui-bundle.js, swagger-ui.css. static/docs/docs.js starts it." \
	  "" \
	  "Do not edit these files: the version is pinned in vendor/package.json and" \
	  "vendor/package-lock.json (with its integrity hash); run make vendor to fetch it again." \
	  > $(VENDOR_SWAGGER)/SOURCE.txt; \
	echo "Swagger UI $$version -> $(VENDOR_SWAGGER)"
