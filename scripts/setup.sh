#!/usr/bin/env bash
# Installs everything Haven needs into this checkout, idempotently:
#   scripts/setup.sh          Python venv (.venv) with Haven, and the npm packages the pages use
#   scripts/setup.sh --test   the same plus test tools and Debian's Chromium, Firefox ESR and
#                             PulseAudio for browser tests
# Needs only Python 3.11+, Node/npm and apt (as root, or with sudo) on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    say "installing Debian packages: $*"
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi

stamp=".venv/.haven-installed"
extra=""
[ "$want_test" = 1 ] && extra="[test]"
want="$(sha256sum pyproject.toml | cut -c1-16)$extra"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages${extra:+ (with test tools)}"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".$extra"
    echo "$want" > "$stamp"
fi

if [ ! -d node_modules/three ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (three.js, Tabler icons; axe-core, puppeteer-core for tests)"
    npm ci --no-audit --no-fund --loglevel=error
fi

if [ "$want_test" = 1 ]; then
    # Browser tests: Debian's Chromium and Firefox ESR (driven by puppeteer-core over WebDriver
    # BiDi), and PulseAudio, which headless Firefox needs to start an AudioContext. The network
    # tests (tests/net/) build namespaces with iproute2 and nftables and relay through a real coturn.
    missing=""
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    command -v firefox-esr >/dev/null 2>&1 || missing="$missing firefox-esr"
    command -v pulseaudio >/dev/null 2>&1 || missing="$missing pulseaudio"
    command -v turnserver >/dev/null 2>&1 || missing="$missing coturn"
    command -v nft >/dev/null 2>&1 || missing="$missing nftables"
    command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
    command -v ss >/dev/null 2>&1 || missing="$missing iproute2"
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086 # word splitting intended
        apt_install $(printf '%s\n' $missing | sort -u)
    fi
fi
