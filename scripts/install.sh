#!/usr/bin/env bash
# Set up everything emidbench needs on a fresh machine, idempotently:
#   a virtual environment in .venv (or $EMIDBENCH_VENV), the CPU build of torch
#   (pinned: an unpinned torch pulls a multi-GB CUDA build), emidbench with its test
#   extra, Debian's WordNet files for the synonym-replacement shifts, and Debian's
#   chromium (the report page's browser tests drive it with playwright).
# On a GPU machine, install the torch build you want into the venv first; this script
# keeps whatever torch is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${EMIDBENCH_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "torch==${EMIDBENCH_TORCH_VERSION:-2.13.0}"
fi
"${PIP[@]}" install -e ".[test]"

# WordNet for EDA synonym replacement (sr_4, sr_7, synonym): Debian ships the WordNet 3.0
# files; emidbench prepares them for nltk on first use. Skipped where apt is not ours.
if [ ! -d /usr/share/wordnet ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null) \
      || echo "note: could not install Debian's wordnet-base; synonym shifts need WordNet (see README)" >&2
  fi
fi

# Chromium for the report page's browser tests (tests/test_report.py): Debian's package,
# driven by playwright from the test extra (playwright's own browser downloads are not
# used). Skipped where apt is not ours; those tests then skip with the reason.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null) \
      || echo "note: could not install Debian's chromium; the report page's browser tests will skip" >&2
  else
    echo "note: not root and no sudo: Debian's chromium not installed; the report page's browser tests will skip" >&2
  fi
fi
