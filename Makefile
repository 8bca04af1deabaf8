# The two commands of the README. Both install what they need first (scripts/setup.sh).
.PHONY: serve test setup setup-test bench

serve: setup
	.venv/bin/haven serve --demo

test: setup-test
	.venv/bin/python -m pytest

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test
