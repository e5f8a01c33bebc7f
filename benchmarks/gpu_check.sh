#!/usr/bin/env bash
# One run on a GPU machine that already has jax (CUDA), flax, optax, chex, equinox, torch and
# pytest installed: the library's correctness tests on the GPU, then the benchmarks.
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
# (-p no:benchmark: pytest-benchmark, where installed, refuses to run under xdist.)
# Writes tests.log, bench.log, gpu.md, gpu.json and linear.log under $OUT.
set -u
OUT=${OUT:-/tmp/gatedcells-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
$PY -c "import jax, flax, optax, equinox, torch; print('jax', jax.__version__, jax.devices(),
 'flax', flax.__version__, 'optax', optax.__version__, 'equinox', equinox.__version__,
 'torch', torch.__version__, torch.cuda.is_available())"

# 1. Correctness on the GPU. XLA would run float32 matmuls in TF32 on this card; the 1e-5
#    equivalence tolerances are for float32, so the tests ask for full precision.
start=$SECONDS
JAX_DEFAULT_MATMUL_PRECISION=highest timeout "${TEST_TIMEOUT:-200}" $PY -m pytest -q -n 8 \
  -p no:cacheprovider -p no:benchmark tests/test_torch_equivalence.py tests/test_flax_equivalence.py \
  tests/test_fused_grad.py tests/test_unroll.py tests/test_cells.py tests/test_contract.py \
  tests/test_linen.py tests/test_remat.py tests/test_linear_recurrence.py \
  >"$OUT/tests.log" 2>&1
echo "tests: exit $? in $((SECONDS - start)) s"; tail -n 15 "$OUT/tests.log"

# 2. Speed at each library's default precision, every peer that is here.
start=$SECONDS
timeout "${BENCH_TIMEOUT:-280}" $PY -m gatedcells.cli bench --shapes "${SHAPES:-base,latency,long,throughput}" \
  --min-time 0.15 --out "$OUT/gpu.json" --markdown "$OUT/gpu.md" >"$OUT/bench.log" 2>&1
echo "bench: exit $? in $((SECONDS - start)) s"; grep -v "^ *[a-z]* *[a-z_]* *f" "$OUT/bench.log" | tail -n 60

# 3. Sequential against associative linear recurrence.
timeout 60 $PY benchmarks/linear_recurrence.py 2>&1 | tee "$OUT/linear.log"
