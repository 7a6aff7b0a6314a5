#!/usr/bin/env bash
# Headless Chromium for the dashboard tests (playwright drives it) and PNG export (kaleido 1.x needs a Chrome).
# Debian's `chromium` package only: no browser download by playwright or kaleido. Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "install_browser: /usr/bin/chromium present"
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)  # never wait for a password: the caller warns and carries on
"${sudo[@]}" apt-get update -qq
# No recommended packages (printing, notifications, udev: ~100 packages the headless browser never uses); the
# fonts it would recommend are kept, so the exported figures have readable text.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation
echo "install_browser: $(/usr/bin/chromium --version)"
