#!/usr/bin/env bash
# Set up and start the app with the shipped weights: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
