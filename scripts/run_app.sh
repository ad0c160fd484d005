#!/usr/bin/env bash
# Set up and start the app with the shipped weights: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# engine files (weights/NAME.onnx) let the app predict before torch has loaded; skipped when up to
# date. They only make it faster: without them the app loads torch first.
.venv/bin/mrivision export || echo "some engine files were not written: those models load torch first" >&2
exec .venv/bin/streamlit run app.py "$@"
