# MoodStream: two commands do all the set-up on a fresh machine.
#   make demo   venv + ROS 2 from PyPI + messages + packages, then `moodstream demo`
#   make test   the same plus test tools, then ruff, the whole test suite and the training tests
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test demo test lint bench soak evaluate model model-gpu clean

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

demo: setup
	$(BIN)/moodstream demo

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	bash scripts/test-training.sh

lint: setup-test
	$(BIN)/ruff check .

bench: setup
	$(BIN)/moodstream bench

# Hostile input at the full figures of issue 13 (10^6 fuzzed UART frames, 40 concurrent uploads,
# 500 stalled ones): about 10 minutes on 2 cores. `make test` runs it at a bounded scale.
soak: setup-test
	@mkdir -p build
	$(BIN)/python scripts/soak.py --full --json build/soak.json

evaluate: setup
	$(BIN)/moodstream evaluate --model models/emotion.tflite --confusion-png docs/confusion_PublicTest.png

# Reproduce models/emotion.tflite from scratch (training dependencies in their own venv).
model: setup
	python3 -m venv .venv-train
	.venv-train/bin/python -m pip install -q -r models/training/requirements.txt
	PATH=$(CURDIR)/.venv-train/bin:$$PATH bash models/training/reproduce.sh

clean:
	rm -rf build $(VENV) .venv-train-test .pytest_cache .ruff_cache moodstream-demo.png
