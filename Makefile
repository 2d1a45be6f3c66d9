# yolo-lab: the two commands of the README, and helpers.
#   make demo   install what is missing, then run the main job on the built-in shapes data set
#   make test   install what is missing, then run every test
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup build demo test lint bench doctor clean-torch

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build

demo: setup
	$(CARGO) run --bin yolo-lab -- demo

test: setup
	$(CARGO) test --all-targets
	$(CARGO) test --doc

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup
	$(CARGO) run --release --example loader_bench
	$(CARGO) run --release --example train_step_bench

doctor: setup
	$(CARGO) run --bin yolo-lab -- doctor

# after switching ./.libtorch between the CPU and CUDA layouts
clean-torch:
	$(CARGO) clean -p torch-sys
