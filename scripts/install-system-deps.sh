#!/usr/bin/env bash
# Debian packages Veil's tests and tools need. Idempotent: installs only what is missing.
#   ffmpeg                      ffprobe/ffmpeg read Veil's outputs back in tests (PyAV bundles
#                               its own FFmpeg for Veil itself)
#   gstreamer + rtsp server     the gateway's masked RTSP output (GStreamer's RTSP server)
#   libgirepository1.0-dev,     build PyGObject (the GStreamer bindings) in the virtual env
#   libcairo2-dev, pkg-config
#   chromium                    the web page's tests run in a real browser
set -euo pipefail

packages=(
    ffmpeg
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-libav
    gstreamer1.0-tools
    libgirepository1.0-dev
    libcairo2-dev
    pkg-config
    chromium
    fonts-dejavu-core
)

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
