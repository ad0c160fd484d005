#!/usr/bin/env bash
# Set up and start the app with the shipped weights: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# engine files (weights/NAME.onnx) let the app predict before torch has loaded; skipped when up to date
.venv/bin/mrivision export
exec .venv/bin/streamlit run app.py "$@"
