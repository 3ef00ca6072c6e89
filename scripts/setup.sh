#!/usr/bin/env bash
# setup.sh: installs every Debian package tandem needs to build, test and fuzz. Idempotent; run as root on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git   # toolchain
  clang libclang-rt-14-dev                           # fuzzing (libFuzzer) and sanitizer runtimes
  libpcre2-dev libutf8proc-dev                       # tokenizer: Unicode regex, normalization
  libmicrohttpd-dev libjansson-dev                   # tandem serve: HTTP server, JSON
  libgnutls28-dev                                    # the cloud link: TLS 1.3 with a pre-shared key
  python3                                            # small helper scripts (plots, fixtures checks)
  gnuplot-nox                                        # scripts/plot_context.sh: PNG plots of benchmark results
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user  # scripts/test_arm.sh: NEON kernels under emulation
  libvulkan-dev glslc mesa-vulkan-drivers            # the Vulkan device: headers, shader compiler, a software GPU
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# The server tests drive `tandem serve` with the official OpenAI client, pinned in tests/server/package-lock.json;
# without Node.js they are skipped.
sh "$(dirname "$0")/../tests/server/install.sh"
