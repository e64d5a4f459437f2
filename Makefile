# grukit — the README's commands. Everything runs inside ./.venv, made on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# torch is pinned for set-up only: 2.13.0 is the CPU build on this machine's disk.
# The package itself asks for torch>=2.4.
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup test lint demo bench clean sanitize

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test,cli]"
	touch $(STAMP)

setup: $(STAMP)

# The native kernel is built once, at session start (tests/conftest.py). Without a compiler
# its tests skip, naming why; GRUKIT_REQUIRE_NATIVE=1 in the environment (.ci/run sets it;
# make passes the environment through) fails the run instead.
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/grukit lm demo --out runs/demo

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py --out bench-out

# The native kernel built with -fsanitize=address,undefined (GRUKIT_SANITIZE=1: its own
# build directory) and its tests run against it. Python is not instrumented: the ASan
# runtime is preloaded, with libstdc++ (else ASan cannot find __cxa_throw when the kernel
# raises); leak checking is off (the interpreter's own allocations). Not part of `make test`.
SANITIZE_ENV = GRUKIT_SANITIZE=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LD_PRELOAD="$$($${CXX:-c++} -print-file-name=libasan.so) $$($${CXX:-c++} -print-file-name=libstdc++.so)"

sanitize: $(STAMP)
	$(SANITIZE_ENV) $(BIN)/python -c "from grukit.backends.native import build; \
		assert build.sanitize() and build.load() is not None, build.failure()"
	$(SANITIZE_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_backend_native.py tests/test_native_reliability.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
