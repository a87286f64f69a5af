#!/usr/bin/env bash
# What a new user gets from a wheel: build it, install it (not editable) in a fresh environment, and run the
# ready-made sdss model from another folder on the real spectra, timed.
#
#   scripts/check_wheel.sh [SPECTRA_DIR]      # default ../shared/data/sdss
#
# Prints the wheel's size, the install time and the time of `astrocnn predict --model sdss`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
spectra="$(cd "${1:-$repo/../shared/data/sdss}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" "$repo" 2>/dev/null \
  || python3 -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"
wheel="$(ls "$work"/dist/astrocnn-*.whl)"
echo "wheel: $(basename "$wheel") $(du -h "$wheel" | cut -f1)"

python3 -m venv "$work/venv"
start=$(date +%s)
"$work/venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$work/venv/bin/python" -m pip install --quiet "$wheel"
echo "install: $(( $(date +%s) - start )) s"

mkdir "$work/elsewhere" && cd "$work/elsewhere"
start=$(date +%s.%N)
"$work/venv/bin/astrocnn" predict --model sdss "$spectra" --out p.csv
end=$(date +%s.%N)
echo "predict --model sdss on $(ls -R "$spectra" | grep -c '\.fits') files: $(echo "$end - $start" | bc) s"
cat p.csv
