#!/usr/bin/env bash
# Installs ofahw and what it needs on a fresh machine, with the OpenVINO backend, NVML's binding and Ray.
# torch 2.13.0 (CPU build) goes first, so that the package's loose torch requirement does not pull a
# multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
python3 -m pip install --quiet --disable-pip-version-check -e ".[test,openvino,energy,ray]"
