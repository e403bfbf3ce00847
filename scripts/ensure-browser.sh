#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser test of the admin pages
# (tests/e2e/test_admin_pages.py drives /usr/bin/chromium through Playwright; Playwright's own
# browser download is never used). Quiet and quick when it is already there.
set -euo pipefail
CHROMIUM=/usr/bin/chromium

[ -x "$CHROMIUM" ] && exit 0

install=(sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium')
echo "installing Debian's chromium for the admin pages' browser test"
if [ "$(id -u)" -eq 0 ]; then
  "${install[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo -n "${install[@]}"
else
  echo "Chromium is missing at $CHROMIUM and this user cannot install it. Run as root:" >&2
  echo "  apt-get update && apt-get install -y chromium" >&2
  exit 1
fi

[ -x "$CHROMIUM" ] || { echo "chromium was installed but $CHROMIUM is still missing" >&2; exit 1; }
