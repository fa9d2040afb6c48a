#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/tag), once.
# Playwright drives it through executable_path; never `playwright install`
# (its browser downloads are not reachable from here).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi

$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
"$CHROMIUM" --version
