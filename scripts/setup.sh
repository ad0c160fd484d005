#!/usr/bin/env bash
# Create .venv and install mrivision (with extras given as $1, e.g. "[test]"). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch 2.14.1 + torchvision 0.29.1 come from the local wheel cache where pip has one.
.venv/bin/python -m pip install --quiet -e ".${1:-}"
