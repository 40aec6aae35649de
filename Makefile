# `make demo` runs the main job from nothing; `make test` runs the tests from nothing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip's byte-compiling of every installed file is half the install's time (263 s -> 119 s without
# it); Python compiles what is imported on first use instead. The targets let it write those .pyc
# files even where PYTHONDONTWRITEBYTECODE is set, or every process would compile torch again.
RUN := env -u PYTHONDONTWRITEBYTECODE

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU wheel first: plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --no-compile torch==2.13.0
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(RUN) $(BIN)/recllm demo

# One pytest worker per core (pytest-xdist): 2.5 min instead of 4 on 2 cores; much of the
# suite waits on subprocesses, servers and Ray.
test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) *.egg-info
