#!/usr/bin/env bash
# setup.sh — installs the Debian packages psd needs (apt-get when root,
# otherwise prints the exact command) and builds it into build/ (programs in
# build/bin). --tests adds the packages the tests need; --asan also builds
# build-asan/ under AddressSanitizer + UndefinedBehaviorSanitizer. Safe to
# run again: it only does what is missing.
set -euo pipefail

# dataset-fashion-mnist: the quick start's data (and the examples' tests);
# libmicrohttpd-dev: psd's /metrics (a .deb user needs libmicrohttpd12);
# libxxhash-dev: XXH3, the hash that turns the sparse models' features into
# table keys (worker/feature_hash.h; a .deb user needs libxxhash0);
# libsodium-dev (libzmq3-dev's own dependency): psbench times CURVE's cipher
packages=(build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
          libopenblas-dev libyaml-dev zlib1g-dev libjson-c-dev libmicrohttpd-dev libxxhash-dev
          libsodium-dev check dataset-fashion-mnist)
# what the tests need besides: numpy to check models, systemd and cloud-init
# to verify the units and user-data files, iproute2 (ip, tc) for the
# multi-host test bed of network namespaces; clang and its runtimes for the
# libFuzzer targets (tests/fuzz); prometheus (and its promtool) to scrape
# psd's /metrics (tests/e2e/test_metrics.py); cffi, pytest and yaml for the
# Python package psd and its tests (tests/python), torch and torchvision for
# its PyTorch example (python/examples/fashion_cnn.py); jsonschema and yamllint
# to check the Kubernetes manifests (tests/deploy/check_k8s.py); slurmctld,
# slurmd, slurm-client and munge for a real Slurm cluster that runs
# deploy/slurm/psd.sbatch (tests/e2e/test_slurm.py)
test_packages=(python3 python3-numpy systemd cloud-init iproute2 clang libclang-rt-dev prometheus
               python3-cffi python3-pytest python3-yaml python3-torch python3-torchvision
               python3-jsonschema yamllint slurmctld slurmd slurm-client munge)
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
asan=0
for arg in "$@"; do
  case "$arg" in
    --asan) asan=1 ;;
    --tests) packages+=("${test_packages[@]}") ;;
    -h|--help) echo "usage: deploy/setup.sh [--tests] [--asan]"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run this, then run setup again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=Release -DPS_WERROR=$werror >/dev/null
cmake --build "$top/build" -j "$jobs"
if [ $asan -eq 1 ]; then
  cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DPS_WERROR=$werror \
        -DPS_SANITIZER=address,undefined >/dev/null
  cmake --build "$top/build-asan" -j "$jobs"
fi
echo "setup: built $top/build/bin: $(ls "$top/build/bin" | tr '\n' ' ')"
