#!/usr/bin/env bash
# Headless Chromium for the tests that check a web page (the MLflow UI `launch ui` serves).
# Installs Debian's `chromium` with apt the first time (needs root), then prints its path.
#
#   bash scripts/chromium.sh      # -> /usr/bin/chromium
set -euo pipefail
die() { echo "chromium.sh: $*" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
    command -v apt-get >/dev/null || die "chromium is not installed and apt-get is not available"
    log=$(mktemp)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "apt-get install chromium failed"; }
    fi
    rm -f "$log"
fi
command -v chromium
