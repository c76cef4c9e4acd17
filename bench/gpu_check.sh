#!/usr/bin/env bash
# Throughput of the CIFAR ResNet-18 and transformer recipes on CUDA GPUs, against hand-written loops.
#
#     bash bench/gpu_check.sh                   # every visible GPU; finishes within 8 minutes
#     STEPS=300 BUDGET_S=420 bash bench/gpu_check.sh
#     bash bench/gpu_check.sh --cpu-smoke       # the same flow on CPU with tiny models (no GPU)
#
# What runs, each for a bounded number of steps (STEPS, default 150) through the real CLI,
# `launch RECIPE --gpus N --precision P --max-steps STEPS`, with N = `nvidia-smi -L | wc -l`
# (DDP when N > 1):
#   recipes/cifar_resnet.py  --set fake_data=true   bf16-mixed, 16-mixed
#   recipes/transformer.py                          bf16-mixed, 16-mixed, and fp8 when the GPU's
#                                                   compute capability is >= 8.9 and torchao
#                                                   imports (or pip-installs)
# and, for each model, a hand-written bf16 loop on one GPU: the same model class, DataLoader,
# optimizer and batch size, `torch.autocast("cuda", torch.bfloat16)`, no Trainer.
# (ResNet-18 gets no fp8 run: its convolutions have no fp8 path and its one Linear, 512->10,
# is not fp8-eligible, so fp8 would measure bf16.)
#
# Samples/s of a `launch` run are read from its plain progress lines ("step K/T ... X it/s",
# a running rate since the epoch began): from two lines, the rate between them, so start-up,
# cuDNN autotuning and data-loader warm-up (the first WARMUP steps) are left out. The hand
# loops time the same window with torch.cuda.synchronize() at both ends. Each run has a
# timeout and the script stops starting runs when BUDGET_S (default 450 s) is spent.
# Exit codes: 0 done (a failed run is reported in the table and makes the exit code 1),
# 2 no usable GPU (nvidia-smi missing, no GPU listed, or torch without CUDA).
set -uo pipefail

MODE=gpu
case "${1:-}" in
  --cpu-smoke) MODE=cpu ;;
  "") ;;
  -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_check: unknown option $1 (use --cpu-smoke or nothing)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python}
START=$SECONDS
BUDGET_S=${BUDGET_S:-450}
PER_RUN_S=${PER_RUN_S:-150}
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
FAILED=0

die() {
  echo "gpu_check: error: $*" >&2
  exit 2
}

if [[ $MODE == gpu ]]; then
  STEPS=${STEPS:-150}
  WARMUP=${WARMUP:-50}
  command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this check needs a \
machine with NVIDIA GPUs and their driver. To test the script itself here, run \
\`bash bench/gpu_check.sh --cpu-smoke\`."
  GPU_LIST=$(nvidia-smi -L 2>&1) || die "nvidia-smi failed (driver not loaded?): $GPU_LIST"
  GPUS=$(nvidia-smi -L | wc -l)
  ((GPUS > 0)) || die "nvidia-smi lists no GPU"
  CUDA_OK=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>&1) ||
    die "python cannot import torch: $CUDA_OK"
  [[ $CUDA_OK == 1 ]] || die "torch $("$PY" -c 'import torch; print(torch.__version__)') \
cannot use CUDA although nvidia-smi lists $GPUS GPU(s): a CPU-only torch build or a driver \
too old for its CUDA. Install a CUDA build of torch (https://pytorch.org/get-started/locally/)."
  DEVICE_ARGS=(--gpus "$GPUS")
  LOOP_DEVICE=cuda
  CIFAR_BATCH=256
  CIFAR_SET=()
  LM_BATCH=32
  LM_SET=()
  PRECISIONS=(bf16-mixed 16-mixed)
else
  STEPS=${STEPS:-12}
  WARMUP=${WARMUP:-4}
  GPUS=1
  DEVICE_ARGS=(--accelerator cpu)
  LOOP_DEVICE=cpu
  CIFAR_BATCH=4
  CIFAR_SET=(--set batch_size=4 --set num_workers=0)
  LM_BATCH=4
  LM_SET=(--set batch_size=4 --set n_layers=2 --set d_model=64 --set n_heads=4 --set seq_len=32)
  PRECISIONS=(bf16-mixed)
fi

# -- a small Python helper: device info, progress-line parsing, the hand-written loops ------
HELPER="$OUT/gpu_check_helper.py"
cat >"$HELPER" <<'PYEOF'
"""Helper of bench/gpu_check.sh: `info`, `rate LOG WARMUP`, `loop MODEL DEVICE STEPS WARMUP KEY=VALUE...`."""
import importlib.util
import re
import sys
import time

LINE = re.compile(r"epoch (\d+) step (\d+)(?:/\d+ \(\d+%\))? ([\d.]+) (it/s|s/it)")


def info():
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        name = torch.cuda.get_device_name(0)
        print(f"{name}\t{major}.{minor}\t{int(major * 10 + minor >= 89)}\t{torch.__version__}\t"
              f"{torch.version.cuda}")
    else:
        print(f"CPU\t0.0\t0\t{torch.__version__}\tnone")


def rate(log_path, warmup):
    """Steady it/s between the first progress line at or after `warmup` steps and the last."""
    points = []
    for line in open(log_path, errors="replace"):
        m = LINE.search(line)
        if m:
            epoch, count, value, unit = int(m[1]), int(m[2]), float(m[3]), m[4]
            elapsed = count / value if unit == "it/s" else count * value
            points.append((epoch, count, elapsed))
    if not points:
        sys.exit(f"no progress lines in {log_path}")
    last_epoch = points[-1][0]
    points = [p for p in points if p[0] == last_epoch]
    late = [p for p in points if p[1] >= warmup] or points[-1:]
    (_, c1, e1), (_, c2, e2) = late[0], late[-1]
    if c2 > c1 and e2 > e1:
        print(f"{(c2 - c1) / (e2 - e1):.4f}\tsteps {c1}-{c2}")
    else:  # one line only: the running rate, start-up included
        print(f"{c2 / e2:.4f}\trunning rate to step {c2} (start-up included)")


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loop(model_name, device, steps, warmup, *settings):
    """A plain bf16 training loop over the recipe's own model and DataLoader."""
    import torch
    import torch.nn.functional as F

    kwargs = dict(s.split("=", 1) for s in settings)
    torch.manual_seed(0)
    if model_name == "cifar":
        recipe = load("recipes/cifar_resnet.py", "gpu_check_cifar")
        data = recipe.CIFAR10DataModule(fake_data=True, batch_size=int(kwargs["batch_size"]),
                                        num_workers=int(kwargs.get("num_workers", 8)),
                                        fake_size=int(kwargs["fake_size"]))
        data.setup("fit")
        loader = data.train_dataloader()
        model = recipe.resnet18_cifar().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4)

        def loss_of(batch):
            x, y = (t.to(device, non_blocking=True) for t in batch)
            return F.cross_entropy(model(x), y)
        clip = None
    else:
        recipe = load("recipes/transformer.py", "gpu_check_transformer")
        lm = recipe.TransformerLM(**{k: int(v) for k, v in kwargs.items()}).to(device)
        loader = lm.train_dataloader()
        model = lm
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95),
                                      weight_decay=0.1, fused=device == "cuda")

        def loss_of(batch):
            (tokens,) = batch
            tokens = tokens.to(device, non_blocking=True)
            logits = model(tokens[:, :-1])
            return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
        clip = 1.0  # the recipe's gradient_clip_val
    model.train()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    done, start, samples = 0, None, 0
    while done < steps:
        for batch in loader:
            if done == warmup:
                sync()
                start, samples = time.perf_counter(), 0
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = loss_of(batch)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            samples += len(batch[0])
            done += 1
            if done == steps:
                break
    sync()
    elapsed = time.perf_counter() - start
    print(f"{samples / elapsed:.1f}\tsteps {warmup}-{steps}, final loss {loss.item():.3f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "info":
        info()
    elif command == "rate":
        rate(args[0], int(args[1]))
    elif command == "loop":
        loop(args[0], args[1], int(args[2]), int(args[3]), *args[4:])
PYEOF

IFS=$'\t' read -r GPU_NAME CC FP8_CC TORCH_VERSION CUDA_VERSION < <("$PY" "$HELPER" info)
echo "gpu_check: ${GPUS}x ${GPU_NAME} (compute capability ${CC}), torch ${TORCH_VERSION}, CUDA ${CUDA_VERSION}; ${STEPS} steps per run, rates from step ${WARMUP}; output in ${OUT}"

if [[ $MODE == gpu && $FP8_CC == 1 ]]; then
  if "$PY" -c 'import torchao.float8' >/dev/null 2>&1 ||
    timeout 90 "$PY" -m pip install --quiet --no-input --timeout 20 torchao >"$OUT/pip-torchao.log" 2>&1; then
    LM_PRECISIONS=("${PRECISIONS[@]}" fp8)
  else
    echo "gpu_check: fp8 skipped: torchao is not installed and pip could not install it (see $OUT/pip-torchao.log)"
    LM_PRECISIONS=("${PRECISIONS[@]}")
  fi
else
  [[ $MODE == gpu ]] && echo "gpu_check: fp8 skipped: compute capability ${CC} < 8.9"
  LM_PRECISIONS=("${PRECISIONS[@]}")
fi

# Create the runs' MLflow store now: a new sqlite store costs seconds of CPU on the logger's
# thread, which would otherwise overlap the first run's measured steps.
mkdir -p "$OUT/runs"
"$PY" -c "import sys, mlflow; from launcher.tracking.reader import default_tracking_uri
mlflow.MlflowClient(default_tracking_uri(sys.argv[1])).search_experiments()" "$OUT/runs" \
  >"$OUT/mlflow-store.log" 2>&1 || echo "gpu_check: could not pre-create the MLflow store (see $OUT/mlflow-store.log)"

remaining() { echo $((BUDGET_S - (SECONDS - START))); }

# record NAME SAMPLES_PER_S PER_GPU NOTE
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# run_launch NAME RECIPE PRECISION BATCH_PER_GPU [launch args...]
run_launch() {
  local name=$1 recipe=$2 precision=$3 batch=$4
  shift 4
  local left limit log="$OUT/$name.log"
  left=$(remaining)
  if ((left < 40)); then
    record "$name" - - "skipped: time budget spent"
    return
  fi
  limit=$((left < PER_RUN_S ? left : PER_RUN_S))
  echo "gpu_check: $name: launch $recipe ${DEVICE_ARGS[*]} --precision $precision --max-steps $STEPS $* (timeout ${limit}s)"
  timeout --kill-after=15 "$limit" launch "$recipe" "${DEVICE_ARGS[@]}" --precision "$precision" \
    --max-steps "$STEPS" --no-resume --output-dir "$OUT/runs" --name "$name" "$@" >"$log" 2>&1
  local rc=$?
  if ((rc != 0)); then
    FAILED=1
    local why="exit code $rc"
    ((rc == 124)) && why="timed out after ${limit}s"
    record "$name" - - "FAILED ($why): $(grep -m1 -i 'error' "$log" | cut -c1-120)"
    tail -n 5 "$log" | sed 's/^/    /'
    return
  fi
  local parsed
  if ! parsed=$("$PY" "$HELPER" rate "$log" "$WARMUP" 2>&1); then
    FAILED=1
    record "$name" - - "FAILED: $parsed"
    return
  fi
  local its=${parsed%%$'\t'*} note=${parsed#*$'\t'}
  local total per_gpu
  total=$(awk -v r="$its" -v b="$batch" -v g="$GPUS" 'BEGIN { printf "%.1f", r * b * g }')
  per_gpu=$(awk -v r="$its" -v b="$batch" 'BEGIN { printf "%.1f", r * b }')
  record "$name" "$total" "$per_gpu" "$its it/s, $note"
}

# run_loop NAME MODEL KEY=VALUE...
run_loop() {
  local name=$1 model=$2
  shift 2
  local left limit log="$OUT/$name.log"
  left=$(remaining)
  if ((left < 30)); then
    record "$name" - - "skipped: time budget spent"
    return
  fi
  limit=$((left < PER_RUN_S ? left : PER_RUN_S))
  echo "gpu_check: $name: hand-written bf16 loop on one device (timeout ${limit}s)"
  if ! timeout --kill-after=15 "$limit" "$PY" "$HELPER" loop "$model" "$LOOP_DEVICE" "$STEPS" "$WARMUP" "$@" >"$log" 2>&1; then
    FAILED=1
    record "$name" - - "FAILED: $(tail -n 1 "$log" | cut -c1-120)"
    tail -n 5 "$log" | sed 's/^/    /'
    return
  fi
  local line samples
  line=$(tail -n 1 "$log")
  samples=${line%%$'\t'*}
  record "$name" "$samples" "$samples" "${line#*$'\t'}"
}

# -- the runs ---------------------------------------------------------------------------------
# Enough data that STEPS steps stay inside the first epoch on every rank.
CIFAR_SIZE=$(((STEPS + 20) * CIFAR_BATCH * GPUS))
LM_SEQUENCES=$(((STEPS + 20) * LM_BATCH * GPUS * 16 / 15 + 64))
CIFAR_ARGS=(--set fake_data=true --set fake_size="$CIFAR_SIZE" "${CIFAR_SET[@]}")
LM_ARGS=(--set num_sequences="$LM_SEQUENCES" "${LM_SET[@]}")

run_loop "cifar_resnet hand-bf16" cifar batch_size="$CIFAR_BATCH" fake_size="$CIFAR_SIZE" \
  $([[ $MODE == cpu ]] && echo num_workers=0)
for precision in "${PRECISIONS[@]}"; do
  run_launch "cifar_resnet-$precision" recipes/cifar_resnet.py "$precision" "$CIFAR_BATCH" "${CIFAR_ARGS[@]}"
done
LOOP_LM=(batch_size="$LM_BATCH" num_sequences="$LM_SEQUENCES")
for setting in "${LM_SET[@]}"; do
  [[ $setting == --set ]] || LOOP_LM+=("$setting")
done
run_loop "transformer hand-bf16" transformer "${LOOP_LM[@]}"
for precision in "${LM_PRECISIONS[@]}"; do
  run_launch "transformer-$precision" recipes/transformer.py "$precision" "$LM_BATCH" "${LM_ARGS[@]}"
done

# -- the table ----------------------------------------------------------------------------------
echo
echo "gpu_check results: ${GPUS}x ${GPU_NAME} (cc ${CC}), torch ${TORCH_VERSION}, CUDA ${CUDA_VERSION}, $((SECONDS - START)) s"
awk -F'\t' -v gpus="$GPUS" '
  { name[NR] = $1; total[NR] = $2; per[NR] = $3; note[NR] = $4
    split($1, parts, /[ -]/); if ($1 ~ /hand-bf16/) base[parts[1]] = $3 }
  END {
    printf "%-28s %12s %12s %9s  %s\n", "run", "samples/s", "per GPU", "vs hand", "note"
    for (i = 1; i <= NR; i++) {
      split(name[i], parts, /[ -]/); b = base[parts[1]]; ratio = "-"
      if (per[i] != "-" && b != "" && b != "-" && name[i] !~ /hand-bf16/) ratio = sprintf("%.3f", per[i] / b)
      where = (name[i] ~ /hand-bf16/) ? "1 device" : gpus " device(s)"
      printf "%-28s %12s %12s %9s  %s (%s)\n", name[i], total[i], per[i], ratio, note[i], where
    }
  }' "$RESULTS"
exit "$FAILED"
