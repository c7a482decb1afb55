# Everything a fresh clone needs: `make report` and `make test` set up the virtualenv, the
# packages and the Fashion-MNIST data, then do their job.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

NNC_VENV ?= .venv-nnc
NNC_STAMP := $(NNC_VENV)/.installed
NNC_WHEELS := $(NNC_VENV)/wheels
NNC_BUILT := $(NNC_WHEELS)/.built

.PHONY: setup system nncodec prepare report test lab clean-cache

setup: $(STAMP)

# Section F's reference codec, MPEG NNC's reference software (Fraunhofer's NNCodec). It pins
# numpy<2, which the main virtualenv does not: its own environment, run as a subprocess
# (approxlib/nncodec.py). It borrows torch and the rest from the main virtualenv through a .pth
# file (its own numpy 1.x comes first on its path) rather than a second 6 GB torch: a fresh
# clone with two copies ran a CI machine out of disk. pip then notes that ml-dtypes (onnx's, in
# the main virtualenv) wants numpy 2: NNCodec never imports it. Skip it with --set nncodec_qps=[].
nncodec: system $(NNC_STAMP)

NNC_PIP := $(NNC_VENV)/bin/pip --disable-pip-version-check
NNC_DEPS := $(NNC_VENV)/.dependencies

$(NNC_VENV)/pyvenv.cfg: | system
	$(PYTHON) -m venv $(NNC_VENV)

# NNCodec has no binary wheel on PyPI: pip compiles its C++ (80 s here on a cold pip cache, one
# core), which needs nothing of the main virtualenv: `prepare` builds it while that installs.
$(NNC_BUILT): | $(NNC_VENV)/pyvenv.cfg
	$(NNC_PIP) wheel -q --no-deps nncodec==2.1.3 -w $(NNC_WHEELS)
	touch $@

# Its dependencies install while it compiles: a dry run reads them from the source
# distribution's metadata (compiling nothing); the wheel then follows alone.
$(NNC_DEPS): $(STAMP) | $(NNC_VENV)/pyvenv.cfg
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
	  > "$$($(NNC_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/approx-main-venv.pth"
	$(NNC_PIP) install -q --dry-run --no-deps --report $(NNC_VENV)/nncodec.json nncodec==2.1.3
	$(NNC_VENV)/bin/python -c "import json, sys; \
	  print(*json.load(open(sys.argv[1]))['install'][0]['metadata']['requires_dist'], sep='\n')" \
	  $(NNC_VENV)/nncodec.json > $(NNC_VENV)/requirements.txt
	$(NNC_PIP) install -q 'numpy<2' -r $(NNC_VENV)/requirements.txt
	touch $@

$(NNC_STAMP): $(NNC_DEPS) $(NNC_BUILT)
	$(NNC_PIP) install -q --no-deps --find-links $(NNC_WHEELS) nncodec==2.1.3
	$(NNC_VENV)/bin/python -I -c "from nncodec import nnc"
	touch $@

# uv installs what pip would (the same sources: tools/pip_sources.py reads pip's configuration)
# but unpacks PyTorch's 5 GB of wheels in parallel: 11 s against pip's 49 s here. Where uv cannot
# be had, pip does it: torch/torchvision first and pinned, as an unpinned resolve pulls a
# multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	if $(BIN)/pip install -q --disable-pip-version-check uv==0.13.9; then \
	  set -f && sources="$$($(BIN)/python tools/pip_sources.py)" && \
	  $(BIN)/uv pip install -q --python $(BIN)/python --index-strategy unsafe-best-match \
	    $$sources -e '.[report,test,cluster]'; \
	else \
	  $(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 && \
	  $(BIN)/pip install -q --disable-pip-version-check -e '.[report,test,cluster]'; \
	fi
	touch $@

# Debian packages, where we may install them: Fashion-MNIST offline (elsewhere torchvision
# downloads it on first use), Chromium, which prints the report to PDF, and g++ (NNCodec is C++). CIFAR cannot be
# fetched here: see README, "Data".
DEB_NEEDED = $(if $(wildcard /usr/share/datasets/fashion-mnist),,dataset-fashion-mnist) \
             $(if $(shell command -v chromium 2>/dev/null),,chromium) \
             $(if $(shell command -v g++ 2>/dev/null),,g++)
system:
	@if [ -n "$(strip $(DEB_NEEDED))" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages: $(strip $(DEB_NEEDED))"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_NEEDED) >/dev/null; \
	elif [ -n "$(strip $(DEB_NEEDED))" ]; then \
	  echo "note: please install $(strip $(DEB_NEEDED)) (Debian/Ubuntu packages) for offline data and the PDF"; \
	fi

# The set-up's parts at once: NNCodec's build (after the Debian packages, which bring g++) beside
# the main virtualenv's install and then NNCodec's dependencies: 113 s → 99 s here, against
# 149 s with pip alone (2026-12-06).
# Everything else of `nncodec` follows in the same sub-make, so `make -j test` sets up once.
prepare:
	@$(MAKE) --no-print-directory -j2 $(NNC_STAMP)

# The stages in WORKERS processes sharing the models folder (approxlib/parallel.py): one per
# core, at most 4 (each holds its own models and data: 1-2.5 GB); WORKERS=1 runs them in one.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
# REPORT_ARGS adds options, e.g. REPORT_ARGS="--no-pdf --set nncodec_qps=[]" without Chromium or g++
REPORT_ARGS ?=
report: prepare
	$(BIN)/approx report --profile $(PROFILE) --workers $(WORKERS) $(REPORT_ARGS)

# Tests on TEST_WORKERS processes of one thread each (pytest-xdist; tests/conftest.py computes
# the shared smoke run beside them, and workers with nothing else left help it): on 2 cores
# 15 min 29 s against 20 min 31 s with the run computed first on two threads (2026-12-06); the
# latest figure: the README's table.
# TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
test: prepare
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4

# JupyterLab refuses to run as root without --allow-root (containers run as root): pass it
# only then. LAB_ARGS adds options, e.g. LAB_ARGS="--no-browser --port=8899".
LAB_ARGS  ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

clean-cache:
	rm -rf models/ reports/
