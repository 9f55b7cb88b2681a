#!/usr/bin/env bash
# GPU check of the new priors: every new mode trains under DDP (one process) with 16-bit AMP on CUDA, then is
# evaluated; prior-loss at two weights. Look for: every run "finished"; in the last lines, train_outside_share
# lower with --prior-weight 5 than with 0 (the penalty moves input-gradient energy into the loose mask), no
# NaN. About 3-5 minutes on one GPU, most of it phantom generation and start-up.
set -euo pipefail
# A CPU dry run of the machinery: ACCEL=cpu PRECISION=32 N=60 SIZE=64 IMAGE=32 EPOCHS=1 scripts/gpu_check_priors.sh
OUT=${1:-/tmp/lungprior-gpu-priors}
rm -rf "$OUT"
lungprior phantom --out "$OUT/bench" --n "${N:-400}" --size "${SIZE:-256}" --seed 0 --bias 0.9 --context 0.5 \
  --val-fraction 0.2 --workers 8
COMMON=(--manifest "$OUT/bench/manifest.csv" --backbone resnet18 --image-size "${IMAGE:-128}" --epochs "${EPOCHS:-4}"
        --batch-size 32 --accelerator "${ACCEL:-gpu}" --devices 1 --strategy ddp --precision "${PRECISION:-16-mixed}"
        --lr 0.001)
for mode in nolung bbox crop; do
  lungprior train "${COMMON[@]}" --mode "$mode" --out "$OUT/runs/$mode"
done
for w in 0 5; do
  lungprior train "${COMMON[@]}" --mode prior-loss --prior-weight "$w" --out "$OUT/runs/prior-loss-w$w"
done
for run in "$OUT"/runs/*; do
  lungprior evaluate --run "$run" --bootstrap 100 > /dev/null
  python - "$run" <<'PY'
import json, sys, pathlib, pandas as pd
run = pathlib.Path(sys.argv[1])
m = json.loads((run / "metrics.json").read_text())
logged = pd.read_csv(next((run / "csv").rglob("metrics.csv")))
share = logged["train_outside_share"].dropna().tolist() if "train_outside_share" in logged else []
print(f"{run.name:16s} macro AUROC {m['macro_auroc']['estimate']:.3f}  attention-in-lung "
      f"{m.get('attention', {}).get('attention_in_lung')}  train_outside_share per epoch {[round(s, 3) for s in share]}")
PY
done
