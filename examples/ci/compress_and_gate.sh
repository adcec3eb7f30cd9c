#!/usr/bin/env bash
# Compress a GAN generator, gate on quality, and leave a report and a sample grid for CI.
#
#   MODEL=builtin:digits-dcgan STEPS=500 bash examples/ci/compress_and_gate.sh
#
# Steps: prune -> finetune -> evaluate against the dense model (FID, --max-fid-increase gate,
# JSON + Markdown report, sample grid) -> export (only when the gate passed) -> optionally push
# to the Hub (HUB_REPO=owner/name, token in HF_TOKEN).
# Exit status: 0 ok, 1 runtime failure, 2 bad usage or input, 3 the quality gate failed.
# The report ($OUT_DIR/report.json, report.md) and the grid ($OUT_DIR/samples.png) are written
# whether the gate passes or not, so the CI job can upload them in both cases.
set -euo pipefail

MODEL="${MODEL:-builtin:digits-dcgan}"          # any SOURCE: file, folder, hf://OWNER/REPO, builtin:...
SPARSITY="${SPARSITY:-0.75}"
GRANULARITY="${GRANULARITY:-block}"
DATA="${DATA:-builtin:digits}"                  # real images for finetune (folder or builtin:digits)
STEPS="${STEPS:-500}"
BATCH_SIZE="${BATCH_SIZE:-64}"
NUM_SAMPLES="${NUM_SAMPLES:-2000}"
MAX_FID_INCREASE="${MAX_FID_INCREASE:-25}"      # percent over the dense model's FID
EVAL_ARGS="${EVAL_ARGS:-}"                      # e.g. "--data images/ --extractor inception"
FORMAT="${FORMAT:-sparse}"
OUT_DIR="${OUT_DIR:-gancompress-out}"
HUB_REPO="${HUB_REPO:-}"
GANCOMPRESS="${GANCOMPRESS:-gancompress}"       # e.g. "python -m gancompress"

mkdir -p "$OUT_DIR"
pruned="$OUT_DIR/pruned.safetensors"
tuned="$OUT_DIR/finetuned.safetensors"

echo "== prune $MODEL to $SPARSITY ($GRANULARITY)" >&2
$GANCOMPRESS prune "$MODEL" --sparsity "$SPARSITY" --granularity "$GRANULARITY" -o "$pruned" --force -q >/dev/null

echo "== finetune $STEPS steps" >&2
$GANCOMPRESS finetune "$pruned" --data "$DATA" --steps "$STEPS" --batch-size "$BATCH_SIZE" -o "$tuned" --force -q >/dev/null

echo "== evaluate (gate: FID at most +$MAX_FID_INCREASE% over the dense model)" >&2
status=0
# The evaluate table goes to the job log (stderr): this script's stdout is the exported file's path.
# shellcheck disable=SC2086  # EVAL_ARGS is a list of options
$GANCOMPRESS evaluate "$tuned" --reference "$MODEL" --fid --num-samples "$NUM_SAMPLES" $EVAL_ARGS \
    --max-fid-increase "$MAX_FID_INCREASE" --samples "$OUT_DIR/samples.png" \
    -o "$OUT_DIR/report.json" --markdown "$OUT_DIR/report.md" --force -q >&2 || status=$?

if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$OUT_DIR/report.md" ]; then
    cat "$OUT_DIR/report.md" >> "$GITHUB_STEP_SUMMARY"
fi
if [ "$status" -ne 0 ]; then
    [ "$status" -eq 3 ] && echo "== quality gate failed: see $OUT_DIR/report.md" >&2
    exit "$status"
fi

echo "== export ($FORMAT)" >&2
push_args=()
if [ -n "$HUB_REPO" ]; then
    push_args=(--push-to-hub "$HUB_REPO" --report "$OUT_DIR/report.json")
fi
$GANCOMPRESS export "$tuned" --format "$FORMAT" -o "$OUT_DIR/generator.safetensors" --force -q ${push_args[@]+"${push_args[@]}"}
