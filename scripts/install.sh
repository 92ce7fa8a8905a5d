#!/usr/bin/env bash
# Set up everything emidbench needs on a fresh machine, idempotently:
#   a virtual environment in .venv (or $EMIDBENCH_VENV), torch + torchvision (pinned as a
#   pair: torchvision's compiled operators only load beside the torch they were built for,
#   and several model families' processors need torchvision), emidbench with its test
#   extra, Debian's WordNet files for the synonym-replacement shifts, and Debian's
#   chromium (the report page's browser tests drive it with playwright).
#
#   x86_64:  torch==2.14.1 torchvision==0.29.1   (a CUDA build that also runs on the CPU)
#   aarch64: torch==2.9.1  torchvision==0.24.1   (a CPU build)
#   override: EMIDBENCH_TORCH_VERSION=... EMIDBENCH_TORCHVISION_VERSION=... (set both)
#
# A torch already in the venv (e.g. the CUDA build you chose on a GPU machine) is kept when
# torchvision imports beside it; otherwise the script stops and says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${EMIDBENCH_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
case "$(uname -m)" in
  aarch64|arm64) TORCH_DEFAULT=2.9.1; TORCHVISION_DEFAULT=0.24.1 ;;
  *)             TORCH_DEFAULT=2.14.1; TORCHVISION_DEFAULT=0.29.1 ;;
esac
TORCH_VERSION="${EMIDBENCH_TORCH_VERSION:-$TORCH_DEFAULT}"
TORCHVISION_VERSION="${EMIDBENCH_TORCHVISION_VERSION:-$TORCHVISION_DEFAULT}"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
elif ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  if "$VENV/bin/python" -m pip show -q torchvision >/dev/null 2>&1; then
    have="$("$VENV/bin/python" -c "import torch; print(torch.__version__)")"
    echo "install.sh: torchvision is installed but does not import beside torch $have in $VENV." >&2
    echo "  Install a matching pair, e.g.: $VENV/bin/python -m pip install torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION" >&2
    echo "  (or the torchvision release built for torch $have), then rerun this script." >&2
    exit 1
  fi
  have="$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")"
  if [ "$have" = "$TORCH_VERSION" ]; then  # the pinned torch: its torchvision is known
    "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  else
  echo "install.sh: torch $have is in $VENV without torchvision; Qwen2-VL, LLaVA-OneVision, InternVL, SmolVLM," >&2
  echo "  Mistral3 and Pixtral need it. Install the torchvision release built for torch $have (torch $TORCH_VERSION" >&2
  echo "  pairs with torchvision $TORCHVISION_VERSION): $VENV/bin/python -m pip install torchvision==<that release>," >&2
  echo "  or replace both: $VENV/bin/python -m pip install torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION" >&2
  exit 1
  fi
fi
"${PIP[@]}" install -e ".[test]"

# Debian packages, where apt is ours (root, or sudo without a password); elsewhere a note.
# apt_install WHAT NOTE PACKAGE...
apt_install() {
  local what="$1" note="$2"; shift 2
  local sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  if [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; then
    echo "note: not root and no sudo: $what not installed; $note" >&2
    return 0
  fi
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null) \
    || echo "note: could not install $what; $note" >&2
}

# WordNet for EDA synonym replacement (sr_4, sr_7, synonym): Debian ships the WordNet 3.0
# files; emidbench prepares them for nltk on first use.
if [ ! -d /usr/share/wordnet ] && command -v apt-get >/dev/null 2>&1; then
  apt_install "Debian's wordnet-base" "synonym shifts need WordNet (see README)" wordnet-base wordnet-sense-index
fi

# Chromium for the report page's browser tests (tests/test_report.py): Debian's package,
# driven by playwright from the test extra (playwright's own browser downloads are not
# used); without it those tests skip with the reason.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  apt_install "Debian's chromium" "the report page's browser tests will skip" chromium
fi
