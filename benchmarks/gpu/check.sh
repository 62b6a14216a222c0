#!/bin/bash
# The GPU check of issue #22 (item 4), prepared to run in one call on the GPU machine:
#
#   make gpu-wheels                     # here: what that machine's image lacks -> .gpu-wheels/
#   run: bash benchmarks/gpu/check.sh   # there, from the repository root, carry .gpu-wheels
#
# That machine has python3 with torch, transformers, accelerate, pandas, peft, pytest,
# einops, jaxtyping and six, but not TransformerLens, plotly, langdetect or datasets; no
# weights travel, so every model here is random weights of a real architecture
# (benchmarks/bench_scale.py). It writes its logs to $OUT (default ./gpu-out) and takes
# a few minutes: the CUDA tests, then bench_scale at Llama-2-7B and Aya-23-8B sizes.
set -u -o pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 INTERP_STEER_PROGRESS=0
python3 -m pip install -q --no-index --no-deps .gpu-wheels/*.whl 2>&1 | tail -3
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, transformer_lens as tl, importlib.metadata as m; \
print('torch', torch.__version__, '| transformers', transformers.__version__, \
'| transformer-lens', m.version('transformer-lens'))"
} 2>&1 | tee "$OUT/device.txt"
python3 -m pytest -q -p no:cacheprovider -m "not real" tests/models/test_devices.py \
  tests/fitting/test_bipo_architectures.py 2>&1 | tee "$OUT/tests.txt"
cd benchmarks || exit 1
timeout 300 python3 bench_scale.py --size llama2-7b --device cuda --batch 8 --seq 512 \
  --new-tokens 64 --pairs 64 --bipo-pairs 8 --items 64 2>&1 | tee "../$OUT/scale_llama2-7b.txt"
timeout 240 python3 bench_scale.py --size aya23-8b --device cuda --batch 8 --seq 512 \
  --new-tokens 64 --pairs 64 --bipo-pairs 8 --items 64 2>&1 | tee "../$OUT/scale_aya23-8b.txt"
