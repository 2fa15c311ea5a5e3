#!/usr/bin/env bash
# Prepare the GPU kit here (a Debian/Ubuntu x86-64 machine with network, Rust and pip): the
# release binary (stripped, xz-compressed), the Vulkan loader packages and the Python wheels
# that the GPU machine lacks, in the git-ignored folders .kit/, .gl/ and .whl/ that the device
# tool carries. See tools/gpu/README.md.
#
#     tools/gpu/prepare.sh            # then: tools/gpu/kit.sh --small --bin <debug or release binary>
set -eu
cd "$(git rev-parse --show-toplevel)"
mkdir -p .kit .gl .whl   # ignored by .gitignore

# The binary: a glibc build runs on the GPU machine's image when it needs no newer glibc than
# that image has (Ubuntu 24.04: 2.39); the check below prints the newest version it asks for.
cargo build --release --locked -p splatdream
T=${CARGO_TARGET_DIR:-target}/release/splatdream
strip -o .kit/splatdream "$T"
echo "newest glibc symbol: $(objdump -T .kit/splatdream | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
xz -T0 -6 -f .kit/splatdream
ls -l .kit

# The Vulkan loader and GL dispatch libraries (the NVIDIA driver's ICD is on the machine).
mkdir -p /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
# shellcheck disable=SC2086
apt-get $o update > /dev/null
# shellcheck disable=SC2086
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

# Wheels: diffusers (pinned in tools/requirements-sd.txt) and its one need missing there, and
# gsplat (tools/requirements.txt; it compiles its CUDA kernels on first use, ≈ minutes).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 -d .whl \
  diffusers==0.42.1 gsplat==1.5.3 importlib_metadata==10.2.0
ls -l .gl .whl
echo "what travels: $(git ls-files -z | du --files0-from=- -cb | tail -1 | cut -f1) bytes tracked + $(du -cb .kit .gl .whl | tail -1 | cut -f1) carried (limit 67108864)"
