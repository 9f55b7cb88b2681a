#!/usr/bin/env bash
# The full fine-tuning recipe on a GPU (image encoder trained, 6 views x 12 epochs), by 5-fold patient-level
# cross-validation on real films with radiologist lung masks (docs/segmentation.md): first with the defaults
# (16 synthetic films rehearsed, a quarter of the prompts the cascade's prior boxes), then without either
# (--replay none --prior-prompts 0) as the ablation; each fold's model is also scored on the 8-film synthetic
# benchmark (--synthetic), so one run answers both "mean Dice >= 0.93 on unseen real films?" and "no regression
# on the synthetic benchmark?". Look for: the auto-cascade rows of OUT/cv-gpu*/cv.md and their "synthetic films"
# line. DATA is a folder in the published layout (structure.csv, images/, metadata.csv).
#   scripts/gpu_segment_cv.sh DATA [OUT]
# A CPU dry run of the machinery: DEVICE=cpu RECIPE=frozen VIEWS=1 EPOCHS=1 FOLDS=2 scripts/gpu_segment_cv.sh DATA
set -euo pipefail
DATA=${1:?usage: scripts/gpu_segment_cv.sh DATA [OUT]}
OUT=${2:-/tmp/lungprior-gpu-cv}
mkdir -p "$OUT"
[ -f "$OUT/lungs-1024/manifest.csv" ] ||
  lungprior segdata --structure-csv "$DATA/structure.csv" --max-side 1024 --out "$OUT/lungs-1024"
[ -f "$OUT/syn8/manifest.csv" ] || lungprior phantom --out "$OUT/syn8" --n 8 --size 256
CV=(python benchmarks/segment_cv.py --data "$OUT/lungs-1024" --folds "${FOLDS:-5}" --device "${DEVICE:-cuda}"
    --recipe "${RECIPE:-full}" --views "${VIEWS:-6}" --epochs "${EPOCHS:-12}" --synthetic "$OUT/syn8")
"${CV[@]}" --out "$OUT/cv-gpu"
"${CV[@]}" --replay none --prior-prompts 0 --out "$OUT/cv-gpu-plain"
tail -n +1 "$OUT"/cv-gpu*/cv.md
