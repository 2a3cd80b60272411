#!/usr/bin/env bash
# Debian packages Veil's tests and tools need. Idempotent: installs only what is missing.
#   ffmpeg    ffprobe/ffmpeg read Veil's outputs back in tests (PyAV bundles its own FFmpeg)
set -euo pipefail

packages=(ffmpeg)

missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Veil needs these Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
