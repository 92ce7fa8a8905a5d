#!/usr/bin/env bash
# Install everything (scripts/install.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${EMIDBENCH_VENV:-.venv}/bin/python" -m pytest -q "$@"
