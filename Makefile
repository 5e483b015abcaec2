# The two commands of the README: `make run` and `make test`.
.PHONY: setup run test bench
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

run: setup
	@.venv/bin/mipo-local

test: setup
	@$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done
