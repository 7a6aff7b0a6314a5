#!/usr/bin/env bash
# Headless Chromium for the dashboard tests (playwright drives it) and PNG export (kaleido 1.x needs a Chrome).
# Debian's `chromium` package only: no browser download by playwright or kaleido. Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "install_browser: /usr/bin/chromium present"
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium
echo "install_browser: $(/usr/bin/chromium --version)"
