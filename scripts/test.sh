#!/usr/bin/env bash
# Install everything (scripts/install.sh) and run the test suite. Extra arguments go to pytest.
# The test files run on EMIDBENCH_TEST_WORKERS processes (default 2; each file's tests stay
# in one process, so module and session fixtures such as a served model are built per
# process); EMIDBENCH_TEST_WORKERS=0 runs everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
workers="${EMIDBENCH_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != "0" ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
exec "${EMIDBENCH_VENV:-.venv}/bin/python" -m pytest -q "${parallel[@]}" "$@"
