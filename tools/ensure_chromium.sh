#!/bin/sh
# Make sure a Chromium the tests can drive headless is installed (the insight report is checked in a
# real browser: tests/integration/test_insight_report.py). Idempotent and quiet: prints nothing when
# one is already there; otherwise installs Debian's `chromium` with apt-get (about a minute and a few
# hundred MB, once), with sudo when not root. Elsewhere, install Chromium or Chrome yourself and point
# CRM_CHROMIUM at it.
set -eu

find_chromium() {
    if [ -n "${CRM_CHROMIUM:-}" ] && [ -x "${CRM_CHROMIUM}" ]; then
        echo "${CRM_CHROMIUM}"; return 0
    fi
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    if [ -x /usr/bin/chromium ]; then echo /usr/bin/chromium; return 0; fi
    return 1
}

if find_chromium >/dev/null; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no Chromium found and no apt-get to install it: install Chromium or Google Chrome," \
         "then set CRM_CHROMIUM=/path/to/the/binary for the tests" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_chromium: installing Chromium needs root: run 'apt-get install -y chromium' as root" >&2
        exit 1
    fi
fi

apt() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 "$@"
}

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "ensure_chromium: installing chromium with apt-get (once; about a minute)..." >&2
# straight away when the package lists are fresh; after `apt-get update` when they are missing or stale
if ! apt install -y chromium >"$log" 2>&1; then
    if ! { apt update >>"$log" 2>&1 && apt install -y chromium >>"$log" 2>&1; }; then
        tail -n 30 "$log" >&2
        echo "ensure_chromium: 'apt-get install -y chromium' failed (output above)" >&2
        exit 1
    fi
fi

if ! binary="$(find_chromium)"; then
    echo "ensure_chromium: apt-get finished but no chromium binary was found" >&2
    exit 1
fi
echo "ensure_chromium: $("$binary" --version 2>/dev/null || echo chromium) at $binary" >&2
