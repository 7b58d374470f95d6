# hqemu: the two entry points are `make run` (a demo) and `make test` (everything CI runs).
#
#   make run        build bench/programs/primes.c and run it under hqemu
#   make test       venv + deps + guest programs + ruff + pytest (without the slow tests)
#   make test-slow  only the tests marked slow
#   make guest      the guest test programs, build/guest/<variant>/<name>
#   make bench      the SPEC-like suite at the reference size: table + build/bench/chart-ref.svg
#                   (BENCH_ARGS="--size quick" etc.; make bench-kernels: issue 4's kernels)
#   make bench-programs  the suite's programs, build/bench/programs/<name>
#   make lint | golden | fuzz | clean

SHELL := /bin/bash
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hqemu-installed
# the suite runs on both cores of a CI machine (pytest-xdist); PYTEST_JOBS=0 runs it in one process
PYTEST_JOBS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_JOBS)

# Debian packages the tests need: the musl and AArch64 cross compilers, qemu-user as the
# AArch64 native oracle, busybox as a large real-world static guest, chromium to render the
# status page headless.
DEB_PACKAGES := musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user busybox-static chromium

# --- guest programs: one .c file each, three x86-64 variants ------------------------------
GUEST_DIR := tests/guest
GUEST_OUT := build/guest
GUEST_SRCS := $(wildcard $(GUEST_DIR)/*.c)
GUEST_HDRS := $(wildcard $(GUEST_DIR)/*.h)
GUEST_NAMES := $(basename $(notdir $(GUEST_SRCS)))
GUEST_CFLAGS := -O2 -std=gnu11 -Wall -Wno-unused-function -fno-strict-aliasing
GUEST_LIBS := -lm

CC_GLIBC := gcc
CC_MUSL := musl-gcc
have = $(shell command -v $(1) >/dev/null 2>&1 && echo yes)

# a variant whose compiler is missing is not built; the tests then skip it with the reason
VARIANTS := $(if $(call have,$(CC_GLIBC)),x86_64-glibc x86_64-pie) $(if $(call have,$(CC_MUSL)),x86_64-musl)
GUEST_BINS := $(foreach v,$(VARIANTS),$(addprefix $(GUEST_OUT)/$(v)/,$(GUEST_NAMES)))

$(GUEST_OUT)/x86_64-glibc/%: $(GUEST_DIR)/%.c $(GUEST_HDRS) | $(GUEST_OUT)/x86_64-glibc
	$(CC_GLIBC) -static $(GUEST_CFLAGS) -o $@ $< $(GUEST_LIBS)

$(GUEST_OUT)/x86_64-pie/%: $(GUEST_DIR)/%.c $(GUEST_HDRS) | $(GUEST_OUT)/x86_64-pie
	$(CC_GLIBC) -static-pie -fPIE $(GUEST_CFLAGS) -o $@ $< $(GUEST_LIBS)

$(GUEST_OUT)/x86_64-musl/%: $(GUEST_DIR)/%.c $(GUEST_HDRS) | $(GUEST_OUT)/x86_64-musl
	$(CC_MUSL) -static $(GUEST_CFLAGS) -o $@ $< $(GUEST_LIBS)

# AArch64 builds, for the AArch64 frontend to come (run natively with qemu-aarch64); not yet
# part of `guest`, since no test runs them
CC_AARCH64 := aarch64-linux-gnu-gcc
$(GUEST_OUT)/aarch64-glibc/%: $(GUEST_DIR)/%.c $(GUEST_HDRS) | $(GUEST_OUT)/aarch64-glibc
	$(CC_AARCH64) -static $(GUEST_CFLAGS) -o $@ $< $(GUEST_LIBS)

$(addprefix $(GUEST_OUT)/,$(VARIANTS) aarch64-glibc):
	mkdir -p $@

.PHONY: guest guest-aarch64
guest: $(GUEST_BINS)

guest-aarch64: $(addprefix $(GUEST_OUT)/aarch64-glibc/,$(GUEST_NAMES))

# --- the SPEC-like benchmark programs: bench/programs/*.c with a `// bench-group:` header -----
# (the other .c files there are `make run` demos); the runner (bench/runner.py) uses the same flags
BENCH_DIR := bench/programs
BENCH_OUT := build/bench/programs
BENCH_NAMES := $(basename $(notdir $(shell grep -lE '^\s*//\s*bench-group:' $(BENCH_DIR)/*.c 2>/dev/null)))
BENCH_CFLAGS := -O2 -static -std=gnu11 -Wall
BENCH_ARGS ?=

$(BENCH_OUT)/%: $(BENCH_DIR)/%.c $(wildcard $(BENCH_DIR)/*.h) | $(BENCH_OUT)
	$(CC_GLIBC) $(BENCH_CFLAGS) -o $@ $< -lm

$(BENCH_OUT)-aarch64/%: $(BENCH_DIR)/%.c $(wildcard $(BENCH_DIR)/*.h) | $(BENCH_OUT)-aarch64
	$(CC_AARCH64) $(BENCH_CFLAGS) -o $@ $< -lm

$(BENCH_OUT) $(BENCH_OUT)-aarch64:
	mkdir -p $@

.PHONY: bench-programs bench-programs-aarch64
bench-programs: $(addprefix $(BENCH_OUT)/,$(BENCH_NAMES))

bench-programs-aarch64: $(addprefix $(BENCH_OUT)-aarch64/,$(BENCH_NAMES))

# --- the Python side -----------------------------------------------------------------------
$(PY):
	$(PYTHON) -m venv $(VENV)

# reinstall only when the project description changed
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

.PHONY: venv deps
venv: $(STAMP)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# --- entry points --------------------------------------------------------------------------
.PHONY: test test-slow lint golden bench bench-kernels fuzz run clean

# `deps` must finish before the guest list is computed, hence the recursive make
# lint failures do not hide test failures: both run, either fails the target
test: venv deps
	$(MAKE) --no-print-directory guest bench-programs
	@status=0; \
	echo "ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "pytest -q $(PYTEST_ARGS)"; $(VENV)/bin/pytest -q $(PYTEST_ARGS) || status=1; \
	exit $$status

test-slow: venv deps
	$(MAKE) --no-print-directory guest bench-programs
	$(VENV)/bin/pytest -q -m slow $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

golden: venv
	$(PY) tests/update_golden.py

# deps installs qemu-user, the qemu column; the runner builds what make did not
bench: venv deps
	$(MAKE) --no-print-directory bench-programs
	$(PY) -m bench $(BENCH_ARGS)

bench-kernels: venv deps
	$(PY) -m bench --suite kernels $(BENCH_ARGS)

# the differential tests read HQEMU_FUZZ to raise their case counts
fuzz: venv deps
	$(MAKE) --no-print-directory guest bench-programs
	HQEMU_FUZZ=1 $(VENV)/bin/pytest -q $(PYTEST_ARGS)

PRIMES := build/bench/primes

$(PRIMES): bench/programs/primes.c
	@mkdir -p $(dir $@)
	$(CC_GLIBC) -static -O2 -o $@ $<

run: venv $(PRIMES)
	@TIMEFORMAT="  (%R s)"; echo "native:"; time ./$(PRIMES); \
	echo "hqemu:"; time $(VENV)/bin/hqemu $(PRIMES)

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
