#!/usr/bin/env bash
# Installs what griffin needs on Debian 12, as root or through sudo; does
# nothing when everything is there.
set -euo pipefail
packages=(cmake g++ make pkg-config libxsimd-dev doctest-dev nlohmann-json3-dev libbenchmark-dev clang libclang-rt-14-dev
          libsentencepiece-dev sentencepiece)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
