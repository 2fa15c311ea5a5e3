#!/usr/bin/env bash
# Validate a glTF 2.0 file (.glb or .gltf) with the Khronos glTF-Validator
# (https://github.com/KhronosGroup/glTF-Validator, npm package `gltf-validator`),
# installing a pinned version into a cache directory on first use.
#
#   tools/gltf_validator.sh model.glb      # prints the report's issue counts and messages
#
# Exits 0 when the report has no errors, 1 when it has (or the file cannot be read), 127
# when node/npm are missing. Environment:
#   SPLATDREAM_NPM_PREFIX            install prefix (default $HOME/.cache/splatdream/npm-gltf)
#   SPLATDREAM_GLTF_VALIDATOR_VERSION npm version to use (default: the pinned one below)
set -euo pipefail

VERSION="${SPLATDREAM_GLTF_VALIDATOR_VERSION:-2.0.0-dev.3.10}"
PREFIX="${SPLATDREAM_NPM_PREFIX:-$HOME/.cache/splatdream/npm-gltf}"
PKG="gltf-validator"
PKG_JSON="$PREFIX/node_modules/$PKG/package.json"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "gltf_validator.sh: '$tool' not found on PATH" >&2
    exit 127
  fi
done
if [ $# -ne 1 ]; then
  echo "usage: tools/gltf_validator.sh model.glb" >&2
  exit 2
fi

installed_version() {
  [ -f "$PKG_JSON" ] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version))' "$PKG_JSON" 2>/dev/null || true
}

install() {
  if [ "$(installed_version)" = "$VERSION" ]; then
    return 0
  fi
  echo "gltf_validator.sh: installing $PKG@$VERSION into $PREFIX" >&2
  npm install --prefix "$PREFIX" --save-exact --no-audit --no-fund --no-update-notifier \
    --ignore-scripts --prefer-offline --loglevel=error "$PKG@$VERSION" >&2
  if [ "$(installed_version)" != "$VERSION" ]; then
    echo "gltf_validator.sh: install failed" >&2
    exit 1
  fi
}

if [ "$(installed_version)" != "$VERSION" ]; then
  mkdir -p "$PREFIX"
  exec 9>"$PREFIX/.install.lock"
  flock 9
  install
  flock -u 9
  exec 9>&-
fi

NODE_PATH="$PREFIX/node_modules" node - "$1" <<'JS'
const fs = require('fs');
const validator = require('gltf-validator');
const file = process.argv[2];
let bytes;
try {
  bytes = new Uint8Array(fs.readFileSync(file));
} catch (e) {
  console.error(`${file}: ${e.message}`);
  process.exit(1);
}
validator.validateBytes(bytes, { maxIssues: 50 }).then((report) => {
  const i = report.issues;
  console.log(`${file}: ${i.numErrors} errors, ${i.numWarnings} warnings, ${i.numInfos} infos, ` +
              `${i.numHints} hints (glTF-Validator ${report.validatorVersion})`);
  for (const m of i.messages) {
    console.log(`  [${m.severity}] ${m.code} ${m.pointer || ''}: ${m.message}`);
  }
  process.exit(i.numErrors > 0 ? 1 : 0);
}, (e) => {
  console.error(`${file}: the validator failed: ${e}`);
  process.exit(1);
});
JS
