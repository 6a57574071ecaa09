#!/usr/bin/env bash
# Installs everything MoE-MLIR needs to build and test on Debian 12 (bookworm):
# LLVM/MLIR 22 (compiler), CMake, Ninja, GoogleTest (runtime unit tests).
# Usage: scripts/install-deps.sh [--with-clang]   (run as root, or with sudo)
#   --with-clang also installs clang-22, for the fuzzing and sanitizer builds.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git python3
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libgtest-dev
)
if [[ "${1:-}" == "--with-clang" ]]; then
  packages+=(clang-22 libclang-rt-22-dev lld-22)
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all build dependencies are installed."
