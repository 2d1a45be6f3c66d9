# yolo-lab: the two commands of the README, and helpers.
#   make demo   install what is missing, then run the main job on the built-in shapes data set
#   make test   install what is missing, then run every test
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup build demo test test-rust notebooks notebooks-full lab lint bench doctor clean-torch

NOTEBOOK_CACHE ?= $(or $(YOLO_LAB_CACHE),$(HOME)/.cache/yolo-lab)

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build

demo: setup
	$(CARGO) run --bin yolo-lab -- demo

test: test-rust notebooks

test-rust: setup
	scripts/with_pg.sh $(CARGO) test --all-targets
	$(CARGO) test --doc

# every notebook executed headless with the evcxr kernel, small settings (YOLO_LAB_QUICK=1), outputs checked
notebooks: setup
	scripts/setup_notebooks.sh
	YOLO_LAB_QUICK=1 scripts/run_notebooks.py

# the full settings, outputs written back into notebooks/ (what is committed)
notebooks-full: setup
	scripts/setup_notebooks.sh
	scripts/run_notebooks.py --write

# JupyterLab with the Rust kernel, opened on notebooks/ (LAB_ARGS="--no-browser --port 8890" on a remote machine)
LAB_ARGS ?=
lab: setup
	scripts/setup_notebooks.sh lab
	cd notebooks && JUPYTER_PATH=$(NOTEBOOK_CACHE)/venv/share/jupyter EVCXR_TMPDIR=$(NOTEBOOK_CACHE)/evcxr-build \
		EVCXR_CONFIG_DIR=$(NOTEBOOK_CACHE)/evcxr-config $(NOTEBOOK_CACHE)/venv/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# throughput against YOLOv5 when YOLOV5_DIR (and YOLOV5_PY or REF_PY) name a reference environment
# (../shared/bench/README.md); `train` and `evolve` take minutes: cargo run --release --example bench -- train
bench: setup
	$(CARGO) run --release --example bench -- loader
	$(CARGO) run --release --example bench -- step

doctor: setup
	$(CARGO) run --bin yolo-lab -- doctor

# after switching ./.libtorch between the CPU and CUDA layouts
clean-torch:
	$(CARGO) clean -p torch-sys
