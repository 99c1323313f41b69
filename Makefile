# Convenience wrappers; each script does all of its own set-up.
.PHONY: run test bench
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
bench:
	.venv/bin/python bench/parse_bench.py
