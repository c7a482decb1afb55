# Everything a fresh clone needs: `make report` and `make test` set up the virtualenv, the
# packages and the Fashion-MNIST data, then do their job.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

NNC_VENV ?= .venv-nnc
NNC_STAMP := $(NNC_VENV)/.installed

.PHONY: setup system nncodec report test lab clean-cache

setup: $(STAMP)

# Section F's reference codec, MPEG NNC's reference software (Fraunhofer's NNCodec, C++ built
# here, ~4 min). It pins numpy<2, which the main virtualenv does not: its own environment,
# run as a subprocess (approxlib/nncodec.py). Skip it with --set nncodec_qps=[].
nncodec: system $(NNC_STAMP)

$(NNC_STAMP):
	$(PYTHON) -m venv $(NNC_VENV)
	$(NNC_VENV)/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 'numpy<2'
	$(NNC_VENV)/bin/pip install -q --disable-pip-version-check nncodec==2.1.3
	touch $@

# torch/torchvision first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e '.[report,test,cluster]'
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

report: setup system nncodec
	$(BIN)/approx report --profile $(PROFILE)

test: setup system nncodec
	$(BIN)/python -m pytest -q

# JupyterLab refuses to run as root without --allow-root (containers run as root): pass it
# only then. LAB_ARGS adds options, e.g. LAB_ARGS="--no-browser --port=8899".
LAB_ARGS  ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name approx-cnn --display-name "approx-cnn (.venv)"
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

clean-cache:
	rm -rf models/ reports/
