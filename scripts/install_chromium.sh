#!/usr/bin/env bash
# Installs Debian's `chromium`, the browser the web page's tests drive headless over the DevTools protocol
# (crates/server/tests/browser.rs); CI runs it, since those tests fail in CI without a browser. Idempotent:
# returns at once when a `chromium` is on the PATH. Needs apt, and root or sudo.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(command -v chromium) is installed"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "chromium: installing Debian's chromium package"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: $(command -v chromium) is installed"
