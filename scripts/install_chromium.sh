#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver (chromium, chromium-driver), for
# the demo page's browser tests (tests/test_demo.py drives them through Selenium).
#
# Idempotent: does nothing when chromium and chromedriver are already on PATH. Needs root and
# apt-get (Debian/Ubuntu); otherwise it says why and exits 0, so CI can call it unconditionally
# and the browser tests skip themselves. On Ubuntu the chromium package is a snap wrapper that
# does not run in a container: use Debian (the CI image) or install Chromium by hand.
#
# apt-get update runs at most once: only when the install fails on the package lists there
# (none in a fresh image, or stale ones), and the install is then tried again.
# --no-install-recommends keeps the set to what the headless browser needs.
set -euo pipefail

packages=(chromium chromium-driver)

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install_chromium: chromium and chromedriver already installed; nothing to do"
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_chromium: not root; skipping (the browser tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get; skipping (the browser tests will skip)"
    exit 0
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
install_packages() { apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; }
echo "install_chromium: apt-get install ${packages[*]}"
if ! install_packages; then
    echo "install_chromium: apt-get update (the package lists lack them or are stale)"
    if ! apt-get update -qq; then
        echo "install_chromium: apt-get update failed (no network?); skipping (the browser tests will skip)"
        exit 0
    fi
    if ! install_packages; then
        echo "install_chromium: apt-get install failed; skipping (the browser tests will skip)"
        exit 0
    fi
fi
echo "install_chromium: installed $(chromium --version 2>/dev/null || echo 'chromium (version unknown)')" \
    "in $(($(date +%s) - start)) s"
