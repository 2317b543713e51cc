#!/usr/bin/env bash
# Install node-agent as a systemd service on Raspberry Pi OS / Debian (bookworm or newer).
#
#   sudo ./install-pi.sh [--wheel PATH | --package SPEC] [--voice] [--config FILE] [--token-from-env]
#   sudo ./install-pi.sh --uninstall
#
# Every step is safe to repeat; re-running upgrades in place:
#   1. apt-get install python3-venv libportaudio2 espeak-ng
#   2. create the venv /opt/node-agent/venv (an existing one is kept)
#   3. pip install node-agent (the given wheel/sdist, or from PyPI), with [voice] if --voice
#   4. copy --config FILE to /etc/node-agent/config.toml (0644: the service user must read it)
#   5. `node-agent service install`: writes /etc/systemd/system/node-agent.service, enables and
#      (re)starts it; with --token-from-env, $OPENCLAW_GATEWAY_TOKEN goes to /etc/node-agent/env
#      (0600), never onto a command line
#   6. print how to pair
# --uninstall stops and removes the service and the venv; config, token and pairing state stay.
#
# Test hooks (tests/test_pi_installer.py runs this in a throwaway root with stubs):
#   NODE_AGENT_ROOT           prefix for every path written (default: the real /)
#   SYSTEMCTL APT_GET PYTHON  programs to run (default: systemctl, apt-get, python3)
set -euo pipefail

readonly SERVICE=node-agent
ROOT="${NODE_AGENT_ROOT:-}"
ROOT="${ROOT%/}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
APT_GET="${APT_GET:-apt-get}"
PYTHON="${PYTHON:-python3}"
readonly PREFIX="$ROOT/opt/$SERVICE"
readonly VENV="$PREFIX/venv"
readonly UNIT="$ROOT/etc/systemd/system/$SERVICE.service"
readonly CONFIG_DIR="$ROOT/etc/$SERVICE"
# `node-agent service install` reads the same hooks.
export NODE_AGENT_ROOT="$ROOT" SYSTEMCTL

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install-pi: $*" >&2
    exit 1
}

step() {
    echo "==> $*"
}

package="$SERVICE"
wheel=""
config=""
voice=0
token_from_env=0
uninstall=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) [ $# -ge 2 ] || die "--wheel needs a path"; wheel="$2"; shift 2 ;;
        --wheel=*) wheel="${1#*=}"; shift ;;
        --package) [ $# -ge 2 ] || die "--package needs a name"; package="$2"; shift 2 ;;
        --package=*) package="${1#*=}"; shift ;;
        --config) [ $# -ge 2 ] || die "--config needs a file"; config="$2"; shift 2 ;;
        --config=*) config="${1#*=}"; shift ;;
        --voice) voice=1; shift ;;
        --token-from-env) token_from_env=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

case "$ROOT" in
    "" | /*) ;;
    *) die "NODE_AGENT_ROOT must be an absolute path" ;;
esac
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo $0 ...)"
fi

do_uninstall() {
    if [ -x "$VENV/bin/node-agent" ]; then
        "$VENV/bin/node-agent" service uninstall
    elif [ -e "$UNIT" ]; then
        # The venv is gone (a half-finished uninstall): remove the unit by hand.
        "$SYSTEMCTL" disable --now "$SERVICE.service" || true
        rm -f "$UNIT"
        "$SYSTEMCTL" daemon-reload
    fi
    rm -rf "$PREFIX"
    step "removed $PREFIX"
    echo "Kept /etc/$SERVICE (config, token) and /var/lib/$SERVICE (pairing):"
    echo "delete them to make this device forget its gateway."
}

if [ "$uninstall" = 1 ]; then
    do_uninstall
    exit 0
fi

# Check everything we can before changing anything.
if [ -n "$wheel" ]; then
    [ -f "$wheel" ] || die "no such file: $wheel"
    # Absolute, so pip takes `PATH[voice]` for a file and not for a requirement name.
    package="$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")"
fi
if [ -n "$config" ] && [ ! -f "$config" ]; then
    die "no such file: $config"
fi
if [ "$token_from_env" = 1 ] && [ -z "${OPENCLAW_GATEWAY_TOKEN:-}" ]; then
    die "--token-from-env: OPENCLAW_GATEWAY_TOKEN is not set (sudo drops it: use sudo --preserve-env=OPENCLAW_GATEWAY_TOKEN)"
fi
extras=""
if [ "$voice" = 1 ]; then
    extras="[voice]"
fi

step "installing system packages"
export DEBIAN_FRONTEND=noninteractive
"$APT_GET" update -q
"$APT_GET" install -y -q --no-install-recommends python3-venv libportaudio2 espeak-ng

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "node-agent needs Python 3.11 or newer (Raspberry Pi OS / Debian bookworm)"

if [ -x "$VENV/bin/python" ]; then
    step "keeping $VENV"
else
    step "creating $VENV"
    mkdir -p "$PREFIX"
    "$PYTHON" -m venv "$VENV"
fi

step "installing $package$extras"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$package$extras"

install_args=(service install)
if [ "$voice" = 1 ]; then
    install_args+=(--voice)
fi
if [ -n "$config" ]; then
    mkdir -p "$CONFIG_DIR"
    if [ "$(realpath "$config")" != "$(realpath -m "$CONFIG_DIR/config.toml")" ]; then
        install -m 0644 "$config" "$CONFIG_DIR/config.toml"
    fi
fi
if [ -f "$CONFIG_DIR/config.toml" ]; then
    install_args+=(--config "/etc/$SERVICE/config.toml")
fi
if [ "$token_from_env" = 1 ]; then
    install_args+=(--token-from-env)
fi
step "installing the service"
"$VENV/bin/node-agent" "${install_args[@]}"

cat <<EOF

node-agent is installed and running as the systemd service $SERVICE.

Pair it with your OpenClaw gateway:
  1. Watch it ask:    journalctl -u $SERVICE -f      (systemctl status $SERVICE shows its state)
  2. On the gateway:  openclaw devices list
                      openclaw devices approve <requestId>
  3. Allow its commands:
                      openclaw nodes pending
                      openclaw nodes approve <requestId>

Config: /etc/$SERVICE/config.toml   Token: /etc/$SERVICE/env (0600)   State: /var/lib/$SERVICE
Remove: sudo $0 --uninstall
EOF
