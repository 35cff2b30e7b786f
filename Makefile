# Herald: `make run` serves on SQLite at http://127.0.0.1:8080; `make test` runs the suite on SQLite and PostgreSQL.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-sqlite test-postgres migration clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: install
	$(PY) main.py

test: install
	HERALD_TEST_DATABASE=sqlite $(PY) -m pytest -q
	HERALD_TEST_DATABASE=postgres $(PY) -m pytest -q

test-sqlite: install
	HERALD_TEST_DATABASE=sqlite $(PY) -m pytest -q

test-postgres: install
	HERALD_TEST_DATABASE=postgres $(PY) -m pytest -q

# After changing domain/models.py: make migration NAME=add_something (then commit domain/migrations/)
migration: install
	HERALD_DATABASE_URL=sqlite://$$(mktemp -d)/schema.sqlite3 $(VENV)/bin/tortoise -c domain.db.TORTOISE_ORM makemigrations -n $(NAME)

clean:
	rm -rf $(VENV) *.egg-info
