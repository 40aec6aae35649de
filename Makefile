# `make demo` runs the main job from nothing; `make test` runs the tests from nothing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU wheel first: plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recllm demo

# One pytest worker per core (pytest-xdist): 2.5 min instead of 4 on 2 cores; much of the
# suite waits on subprocesses, servers and Ray.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) *.egg-info
