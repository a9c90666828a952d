#!/usr/bin/env bash
# Installs every Debian package sfpo needs to build, test and run, then checks that LibTorch
# will use OpenBLAS rather than the reference BLAS. Idempotent; silent when all is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libtorch-dev libgloo-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libgmp-dev libre2-dev libxxhash-dev
  libopenblas0-openmp
  python3-torch python3-grpcio python3-yaml prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The BLAS trap: with only the reference libblas3, fp32 matmul is ~35x slower.
blas=$(readlink -f "$(/sbin/ldconfig -p | awk '/libblas\.so\.3 .*x86-64|libblas\.so\.3 .*aarch64/ {print $NF; exit}')" 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *)
    alt=$(update-alternatives --list "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" 2>/dev/null | grep -m1 openblas || true)
    if [ -n "$alt" ] && [ "$(id -u)" -eq 0 ]; then
      update-alternatives --set "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" "$alt" >/dev/null
      blas=$alt
    else
      echo "setup: libblas.so.3 resolves to '${blas:-nothing}', not OpenBLAS: matmul will be ~35x slower" >&2
      exit 1
    fi
    ;;
esac
