# The README's two commands: `make up` (run the platform) and `make test` (run the suite).
# Both install what they need first: system packages (Java, PostgreSQL) and a venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test install clean

$(BIN)/.installed: pyproject.toml
	PYTHON=$(PYTHON) ./scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

up: install
	$(BIN)/dvd-platform up

# Two workers (pytest-xdist): the tests of the session sample on one, the others by module on whichever is free
# (dvd_platform_tests/conftest.py, xdist_group); much of the suite waits on servers and daemons.
test: install
	$(BIN)/pytest -n 2 --dist loadgroup

clean:
	-$(BIN)/dvd-platform stack down
	rm -rf .dvd
