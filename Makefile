# The two commands of the README; both install what they need first (scripts/bootstrap.sh).
.PHONY: run test install lint fmt bench

run:
	sh scripts/bootstrap.sh run

test:
	sh scripts/bootstrap.sh test

install:
	sh scripts/bootstrap.sh install

lint:
	.venv/bin/ruff check src tests && .venv/bin/ruff format --check src tests && .venv/bin/mypy

fmt:
	.venv/bin/ruff format src tests && .venv/bin/ruff check --fix src tests

bench:
	.venv/bin/sluicegate bench
