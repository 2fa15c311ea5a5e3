#!/usr/bin/env bash
# The GPU kit (issue 29, item 5): every GPU figure of splatdream in one run of ≤ 9 minutes on a
# lent NVIDIA H100/H200 with no network and no Rust toolchain, beside gsplat and diffusers on
# the same GPU, plus the toy-world method table of docs/quality.md (issue 24, item 6).
#
# Prepared here by tools/gpu/prepare.sh (release binary, Vulkan loader, wheels); see
# tools/gpu/README.md. On the GPU machine, from the repository root:
#
#     tools/gpu/kit.sh --out "$OUT"                  # the real run (budget 560 s)
#     tools/gpu/kit.sh --small --bin B --out DIR     # the dry run on lavapipe, tiny sizes
#     tools/gpu/kit.sh --only table,ours-raster …    # some phases only
#
# Every phase has its own time limit and the whole run a budget: a phase that fails or runs out
# of time is recorded (rc 124 = its limit) and the next one starts, and phases that no longer
# fit the budget are skipped, so whatever was measured comes back. Output in --out (the device
# tool returns at most 8 files, two folders deep):
#   kit.json      every result document (schema splatdream-bench/1) + each phase's rc and time
#   summary.txt   adapter, `bench --compare` ratio tables, the toy-world table
#   table.tar.gz  the toy-world runs' compare-row.json, compare-views.png, metrics.jsonl,
#                 config.toml (no splats: an unsharded `compare` here rebuilds the table);
#                 with --table only
#   logs.tar.gz   each phase's log
set -u

SMALL=0
BIN=.kit/splatdream.xz
OUT=${OUT:-runs/gpu-kit}
BUDGET=560
ONLY=
WITH_TABLE=0
while [ $# -gt 0 ]; do
  case $1 in
    --small) SMALL=1 ;;
    --bin) BIN=$2; shift ;;
    --out) OUT=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --only) ONLY=$2; shift ;;   # comma-separated phase names (the others are skipped)
    --table) WITH_TABLE=1 ;;     # also the toy-world method table (≈ 15 min a shard on an H200)
    -h|--help) sed -n '2,/^set -u$/{/^set -u$/d;p}' "$0"; exit 0 ;;
    *) echo "kit.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

T0=$(date +%s)
WORK=$(mktemp -d /tmp/splatdream-kit.XXXXXX)
LOGS=$WORK/logs
RES=$WORK/results
TABLE=$WORK/table
mkdir -p "$LOGS" "$RES" "$TABLE" "$OUT" || exit 1
PHASES=$WORK/phases.jsonl
BLUR=$WORK/lmc-blur-toyworld.safetensors
: > "$PHASES"
RESERVE=15   # seconds kept for packing at the end

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - RESERVE - $(elapsed) )); }
say() { echo "[kit $(elapsed)s] $*"; }
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
record() {  # name rc seconds limit
  printf '{"phase":"%s","rc":%s,"seconds":%s,"limit_s":%s}\n' "$1" "$2" "$3" "$4" >> "$PHASES"
}

# phase NAME CAP_SECONDS CMD…: run CMD under min(CAP, what is left of the budget), log to
# logs/NAME.log; skipped when under 10 s are left.
phase() {
  local name=$1 cap=$2; shift 2
  wanted "$name" || return 0
  local l; l=$(left)
  [ $SMALL = 1 ] && cap=$(( cap * 6 ))   # the dry run: a debug build on lavapipe
  local lim=$(( cap < l ? cap : l ))
  if [ "$lim" -lt 10 ]; then
    say "skip $name (budget spent)"; record "$name" '"skipped"' 0 0; return 0
  fi
  say "$name (limit ${lim}s)"
  local s; s=$(date +%s)
  timeout -s TERM -k 10 "$lim" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  record "$name" "$rc" $(( $(date +%s) - s )) "$lim"
  say "$name: rc $rc after $(( $(date +%s) - s ))s"; tail -n 3 "$LOGS/$name.log" | sed 's/^/    /'
  pack
  return 0
}

# Everything measured so far into --out; called after every phase, so that a run stopped from
# outside (the device tool's limit) still returns what it measured.
pack() {
  {
    cat "$WORK/info.txt"; echo
    for pair in "ours-raster gsplat" "ours-sort gsplat" "ours-vae-f16 diffusers-f16" "ours-im2col-f16 diffusers-f16"; do
      set -- $pair
      if [ -f "$RES/$1.json" ] && [ -f "$RES/$2.json" ]; then
        echo "== bench --compare $1 $2 (B/A > 1: the reference is slower)"
        "$B" bench --compare "$RES/$1.json" "$RES/$2.json" 2>&1
      fi
    done
    if [ -f "$WORK/cubecl-unet.log" ]; then
      echo "== the U-Net's kernels with --conv im2col (cubecl's per-kernel profile, one warm-up + one timed run of each pass)"
      "$PY" tools/gpu/profile_summary.py "$WORK/cubecl-unet.log" --top 30 --json "$RES/unet-kernel-profile.json" 2>&1
    fi
    for f in "$TABLE"/compare-shard-*.md; do [ -f "$f" ] && { echo "== $f"; cat "$f"; }; done
    echo "== phases"; cat "$PHASES"
  } > "$OUT/summary.txt" 2>&1
  "$PY" tools/gpu/collect.py "$RES" "$PHASES" "$WORK/info.txt" "$OUT/kit.json"
  ( cd "$TABLE" && find . \( -name compare-row.json -o -name compare-views.png -o -name metrics.jsonl \
      -o -name config.toml -o -name 'evaluation*.json' -o -name 'compare*.md' -o -name 'compare*.json' \
      -o -name 'summary*.json' \) -print0 | tar -czf "$OUT/table.tar.gz" --null -T - )
  tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs phases.jsonl info.txt
}

# ---- setup: Vulkan loader, wheels, binary ------------------------------------------------------
if [ $SMALL = 0 ]; then
  if ! ldconfig -p | grep -q 'libvulkan.so.1' && [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  fi
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
  EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$EGL" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL
fi
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" .whl/*.whl > "$LOGS/wheels.log" 2>&1 || say "wheels failed (logs/wheels.log)"
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
case $BIN in
  *.xz) xz -dc "$BIN" > "$WORK/splatdream" && chmod +x "$WORK/splatdream"; B=$WORK/splatdream ;;
  *) B=$BIN ;;
esac
PY=${PYTHON:-python3}
{ date -u +%FT%TZ; uname -a; nvidia-smi -L 2>&1; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1
  "$B" info 2>&1; } > "$WORK/info.txt"
say "setup done"; cat "$WORK/info.txt"

# ---- background: gsplat's CUDA build and a random-weight SD 2.1-base folder (CPU work) -----------
if [ $SMALL = 0 ] && { wanted gsplat || wanted gsplat-raster-cases; }; then
  # A fresh extensions folder: a second kit run on a warm machine found the first run's build
  # folder, and torch 2.11's rebuild of it failed to link (2026-12-04).
  export TORCH_EXTENSIONS_DIR=$WORK/torch-extensions
  ( export MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}; timeout 420 "$PY" -c 'import gsplat, torch
from gsplat.cuda._backend import _C
print("gsplat", gsplat.__version__, "built:", _C is not None)' ) > "$LOGS/gsplat-build.log" 2>&1 &
  GSPLAT_PID=$!
else
  GSPLAT_PID=
fi
if [ $SMALL = 0 ] && { wanted ours-distill-a || wanted ours-distill-b; }; then
  SD=$WORK/sd21
  # assets/sd21/base has no tokenizer/; the toy prior's is SD 2.1's own (assets/toyworld/README.md).
  cp -r assets/sd21/base "$WORK/sd21-configs" && cp -r assets/toyworld/tokenizer "$WORK/sd21-configs/"
  ( export OMP_NUM_THREADS=4; timeout 300 "$PY" tools/make_random_sd21.py --configs "$WORK/sd21-configs" --out "$SD" --fp16 ) \
    > "$LOGS/sd21-random.log" 2>&1 &
  SD_PID=$!
else
  SD=tests/cases/sd/tiny-eps
  SD_PID=
fi

# ---- ours: rasterizer, U-Net, VAE ------------------------------------------------------------------
if [ $SMALL = 1 ]; then
  RASTER=(--small --repeats 2); NET=(--small --repeats 2 --model tests/cases/sd/tiny-eps)
  DIST=(--small --repeats 1); FIT=(--small --repeats 2)
else
  # 1440² = 2,073,600 pixels, the pixel count of 1920×1080 (the bench's images are square).
  RASTER=(--splats 10000,100000,1000000 --sizes 512,1024,1440 --repeats 10)
  NET=(--repeats 2); DIST=(--repeats 1 --batch 1); FIT=(--repeats 100)
fi
phase ours-raster 60 "$B" bench raster "${RASTER[@]}" --out "$RES/ours-raster.json"
# CUBECL_AUTOTUNE_LEVEL changes nothing in this build (burn without its `autotune` feature:
# session 21 measured the same U-Net time with `minimal` and `balanced`); it is set for the day
# the feature is on. The U-Net with direct convolutions was timed in sessions 20 and 21
# (docs/perf.md); here it runs with im2col, timed and under cubecl's per-kernel profiler.
phase ours-vae-f16 80 env CUBECL_AUTOTUNE_LEVEL=minimal "$B" bench vae --dtype f16 "${NET[@]}" --out "$RES/ours-vae-f16.json"
# The session-21 profile put 77 % of the U-Net's kernel time in burn's direct convolution (our
# burn has no `autotune` feature): the same U-Net and VAE with the convolutions lowered to
# im2col + matmul (`--conv im2col`, sd::nn::ConvAlgorithm).
phase ours-im2col-f16 100 "$B" bench all --suites unet,vae --dtype f16 --conv im2col "${NET[@]}" --out "$RES/ours-im2col-f16.json"

# ---- the toy-world method table (docs/quality.md), one shard of the prompts per process ----------
if [ $SMALL = 1 ]; then
  PROMPTS=$WORK/prompts.txt; printf 'a red chair\na blue car\n' > "$PROMPTS"
  METHODS=sds,lmc; STEPS=2; SHARDS=2; LMC_STEPS=4
else
  PROMPTS=configs/toyworld-prompts.txt
  METHODS=vdm,sds,sdi,lods,vsd,bridge,lmc; STEPS=150; SHARDS=8; LMC_STEPS=100000
fi
# One wave of the table: every shard of the prompts in its own process, for the given methods,
# each method from its shipped config (configs/toyworld-overlay.toml's header).
wave() {
  local methods=$1 limit=$2 mcs=() m
  for m in ${methods//,/ }; do
    case $m in
      sds) mcs+=(--method-config sds=configs/toyworld.toml) ;;
      vdm) mcs+=(--method-config vdm=configs/dreammapping.toml) ;;
      *) mcs+=(--method-config "$m=configs/$m.toml") ;;
    esac
  done
  local pids=() i
  for i in $(seq 0 $(( SHARDS - 1 ))); do
    timeout -s TERM -k 20 "$limit" "$B" compare --model toyworld --methods "$methods" "${mcs[@]}" \
      --overlay configs/toyworld-overlay.toml \
      --steps "$STEPS" --rescale --set batch=4 --set densify.max_splats=24000 \
      --set "guidance.lmc.blur_model=\"$BLUR\"" \
      --prompts "$PROMPTS" --shard "$i/$SHARDS" --out "$TABLE" >> "$LOGS/table-shard-$i.log" 2>&1 &
    pids+=($!)
  done
  local rc=0 p
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  return $rc
}
table() {
  local cap=$1 t0 rc=0
  t0=$(date +%s)
  local first; first=$(echo "$METHODS" | tr ',' '\n' | grep -vx lmc | paste -sd, -)
  if [[ ",$METHODS," == *,lmc,* ]]; then
    # LMC-SDS's blur model for the prior, trained beside the first wave on ground-truth renders
    # of the objects outside the table (the paper used unrelated photographs), saved every 100
    # steps; lmc runs in a second wave once it is written.
    local imgs=() d lmc_limit=60 reserve=45
    [ $SMALL = 1 ] && { lmc_limit=$(( cap / 2 )); reserve=$(( cap / 3 )); }
    for d in assets/toyworld/gt/*/; do
      case " $(tr '\n' ' ' < configs/toyworld-prompts.txt) " in
        *" $(basename "$d" | sed 's/-/ /') "*) ;;   # a table object: left out
        *) imgs+=(--images "${d}val") ;;
      esac
    done
    timeout -s TERM -k 15 "$lmc_limit" "$B" lmc-train --model toyworld "${imgs[@]}" --resolution 64 \
      --steps "$LMC_STEPS" --save-every 100 --out "$BLUR" --log "$LOGS/lmc-loss.jsonl" \
      > "$LOGS/lmc-train.log" 2>&1 &
    local lmc_pid=$!
    [ -n "$first" ] && { wave "$first" $(( cap - reserve )) || rc=$?; }
    wait "$lmc_pid"
    local rest=$(( cap - ($(date +%s) - t0) ))
    if [ -f "$BLUR" ] && [ "$rest" -ge 15 ]; then
      wave lmc "$rest" || rc=$?
    else
      echo "lmc skipped: blur model $( [ -f "$BLUR" ] && echo present || echo absent), ${rest}s left"
      rc=1
    fi
  else
    wave "$first" "$cap" || rc=$?
  fi
  return $rc
}
TABLE_CAP=200
[ $SMALL = 1 ] && TABLE_CAP=1200
L=$(left); [ "$L" -lt "$TABLE_CAP" ] && TABLE_CAP=$L
if [ $WITH_TABLE = 0 ] || ! wanted table; then
  :
elif [ "$TABLE_CAP" -ge 30 ]; then
  say "table (limit ${TABLE_CAP}s)"; s=$(date +%s)
  table "$TABLE_CAP" > "$LOGS/table.log" 2>&1; rc=$?
  record table "$rc" $(( $(date +%s) - s )) "$TABLE_CAP"
  say "table: rc $rc after $(( $(date +%s) - s ))s; $(find "$TABLE" -name compare-row.json | wc -l) runs finished"
else
  record table '"skipped"' 0 0
fi

# ---- ours: fit and sort, while gsplat's CUDA extension builds ---------------------------------
# (fit on the shipped Spot-the-cow capture: lego is not carried.)
phase ours-fit 30 "$B" bench fit "${FIT[@]}" --out "$RES/ours-fit.json"
phase ours-sort 20 "$B" bench sort $([ $SMALL = 1 ] && echo --small) --out "$RES/ours-sort.json"

# ---- references on the same GPU -----------------------------------------------------------------
if [ $SMALL = 0 ]; then
  [ -n "$GSPLAT_PID" ] && phase gsplat-wait 120 bash -c "while kill -0 $GSPLAT_PID 2>/dev/null; do sleep 1; done"
  # The raster cases against gsplat's CUDA rasterization() first (issue 27, item 6), then
  # gsplat's timings of the raster and sort workloads.
  phase gsplat-raster-cases 40 "$PY" tools/gpu/check_raster_cases.py --cases tests/cases/raster --out "$RES/raster-cases-vs-gsplat.json"
  phase gsplat 50 "$PY" tools/bench/gsplat_bench.py --suites raster,sort "${RASTER[@]}" --out "$RES/gsplat.json"
  phase ours-unet-profile 75 env CUBECL_AUTOTUNE_LEVEL=minimal CUBECL_DEBUG_OPTION=profile \
    CUBECL_DEBUG_LOG="$WORK/cubecl-unet.log" "$B" bench unet --dtype f16 --conv im2col --repeats 1 --out "$RES/ours-unet-profiled.json"
  phase diffusers-f16 40 "$PY" tools/bench/diffusers_bench.py --dtype f16 --repeats 5 --out "$RES/diffusers-f16.json"
else
  phase ours-unet-profile 300 env CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG="$WORK/cubecl-unet.log" \
    "$B" bench unet --small --model tests/cases/sd/tiny-eps --conv im2col --repeats 1 --out "$RES/ours-unet-profiled.json"
  phase diffusers-f16 120 "$PY" tools/bench/diffusers_bench.py --small --model tests/cases/sd/tiny-eps --repeats 2 --out "$RES/diffusers-f16.json"
fi

# ---- ours: generate steps per method at SD 2.1-base size (one camera, 512²), in two groups so
# that the first group's figures come back even if the second runs out of time ------------------
if [ -n "$SD_PID" ]; then wait "$SD_PID"; fi
if [ -f "$SD/model_index.json" ]; then
  for g in "a sds,vdm,bridge,lmc" "b sdi,lods,vsd"; do
    set -- $g
    phase "ours-distill-$1" 110 env CUBECL_AUTOTUNE_LEVEL=minimal "$B" bench distill --model "$SD" --dtype f16 \
      --methods "$2" "${DIST[@]}" --out "$RES/ours-distill-$1-f16.json"
  done
else
  say "no SD 2.1 folder (logs/sd21-random.log): distill skipped"; record ours-distill '"no-model"' 0 0
fi

# ---- pack ---------------------------------------------------------------------------------------
pack
say "done: $(ls "$OUT" | tr '\n' ' ')"
