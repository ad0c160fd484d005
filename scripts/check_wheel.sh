#!/usr/bin/env bash
# The wheel works on its own: build it, install it into a fresh venv outside the source tree, and from
# another folder list the shipped models and predict a shipped example slice (both from the wheel).
# Usage: scripts/check_wheel.sh [WORK_DIR]   (default: a temporary folder, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-}"
if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/mrivision-wheel.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
start=$SECONDS
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" .
rm -rf build  # setuptools' staging copy of the package (and of the weights): not left in the checkout
python3 -m venv "$work/venv"
# Dependencies as setup.sh installs them (torch from the local wheel cache where pip has one).
"$work/venv/bin/python" -m pip install -qq --no-compile "$work"/dist/mrivision-*.whl
echo "wheel built and installed in $((SECONDS - start)) s"
cd "$work"
export HF_HUB_OFFLINE=1 MRIVISION_CACHE_DIR="$work/cache"
installed="$("$work/venv/bin/python" -c 'import mrivision; print(mrivision.__file__)')"
case "$installed" in "$work"/venv/*) ;; *) echo "mrivision imported from $installed, not the wheel" >&2; exit 1 ;; esac
"$work/venv/bin/mrivision" models
example="$("$work/venv/bin/python" -c 'from mrivision.constants import EXAMPLES_DIR; print(sorted(EXAMPLES_DIR.glob("*.jpg"))[0])')"
"$work/venv/bin/mrivision" predict "$example"
echo "wheel check passed in $((SECONDS - start)) s"
