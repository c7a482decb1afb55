# Everything a fresh clone needs: `make report` and `make test` set up the virtualenv, the
# packages and the Fashion-MNIST data, then do their job.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup data report test lab clean-cache

setup: $(STAMP)

# torch/torchvision first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e '.[report,test]'
	touch $@

# Fashion-MNIST offline from Debian's package where we can install it; elsewhere torchvision
# downloads it on first use. CIFAR cannot be fetched here: see README, "Data".
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

report: setup data
	$(BIN)/approx report --profile $(PROFILE)

test: setup data
	$(BIN)/python -m pytest -q

lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name approx-cnn --display-name "approx-cnn (.venv)"
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean-cache:
	rm -rf models/ reports/
