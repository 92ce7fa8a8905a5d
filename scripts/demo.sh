#!/usr/bin/env bash
# Install everything (scripts/install.sh) and run the offline demo: the bundled `mini`
# benchmark x the paper's 61 shifts x the bundled tiny-llava, scored and reported.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${EMIDBENCH_VENV:-.venv}/bin/emidbench" run --config configs/offline-default.yaml "$@"
