#!/usr/bin/env bash
# Run PlayCanvas splat-transform (https://github.com/playcanvas/splat-transform),
# installing a pinned version into a cache directory on first use.
#
#   tools/splat_transform.sh [splat-transform args...]
#   tools/splat_transform.sh -q -w assets/donut.ply /tmp/donut.csv
#   tools/splat_transform.sh --version        # install only (prints the version)
#
# Environment:
#   SPLATDREAM_NPM_PREFIX               install prefix (default $HOME/.cache/splatdream/npm)
#   SPLATDREAM_SPLAT_TRANSFORM_VERSION  npm version to use (default: the pinned one below)
#
# Needs node >= 18 and npm on PATH (tested with node 20.20.2 / npm 11.19.1;
# splat-transform 3.x declares node >= 22 but PLY/CSV conversion works on 20).
# Once installed, nothing touches the network: cache the prefix directory in CI,
# keyed on the version. Exits non-zero if node/npm are missing, the install
# fails, or splat-transform fails.
set -euo pipefail

VERSION="${SPLATDREAM_SPLAT_TRANSFORM_VERSION:-3.7.0}"
PREFIX="${SPLATDREAM_NPM_PREFIX:-$HOME/.cache/splatdream/npm}"
PKG="@playcanvas/splat-transform"
# splat-transform has a peer dependency playcanvas@^2; pin what was tested too.
PEER="playcanvas@2.23.3"
BIN="$PREFIX/node_modules/.bin/splat-transform"
PKG_JSON="$PREFIX/node_modules/$PKG/package.json"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "splat_transform.sh: '$tool' not found on PATH" >&2
    exit 127
  fi
done

installed_version() {
  [ -f "$PKG_JSON" ] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version))' "$PKG_JSON" 2>/dev/null || true
}

install() {
  if [ "$(installed_version)" = "$VERSION" ] && [ -x "$BIN" ]; then
    return 0 # another process installed it while we waited for the lock
  fi
  echo "splat_transform.sh: installing $PKG@$VERSION into $PREFIX" >&2
  # --ignore-scripts: the only install script (webgpu's) is macOS-only.
  # --prefer-offline: reuse npm's own cache (~/.npm) when it has the tarballs.
  npm install --prefix "$PREFIX" --save-exact --no-audit --no-fund --no-update-notifier \
    --ignore-scripts --prefer-offline --loglevel=error "$PKG@$VERSION" "$PEER" >&2
  local got
  got="$(installed_version)"
  if [ "$got" != "$VERSION" ] || [ ! -x "$BIN" ]; then
    echo "splat_transform.sh: install failed (found version '${got}')" >&2
    exit 1
  fi
}

if [ "$(installed_version)" != "$VERSION" ] || [ ! -x "$BIN" ]; then
  mkdir -p "$PREFIX"
  if command -v flock >/dev/null 2>&1; then
    # Serialise concurrent first uses (e.g. parallel tests).
    exec 9>"$PREFIX/.install.lock"
    flock 9
    install
    flock -u 9
    exec 9>&-
  else
    install
  fi
fi

exec "$BIN" "$@"
