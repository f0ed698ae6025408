# The README's two commands: `make run` and `make test`. Everything installs into .venv.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-fast typecheck bench soak lint format

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

test: install typecheck  ## the whole gate (CI): the type check, then every test, SQLite and PostgreSQL, on all cores
	$(PY) -m pytest -n auto --dist loadgroup

test-fast: install  ## the inner loop: everything not marked, SQLite only, well under a minute
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
