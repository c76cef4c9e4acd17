#!/usr/bin/env bash
# A command the tests drive from the outside (chromium for web pages, tmux for a terminal),
# installed from Debian's package of the same name with apt the first time (needs root).
# Prints the command's path.
#
#   bash scripts/debian_tool.sh chromium     # -> /usr/bin/chromium
#   bash scripts/debian_tool.sh tmux         # -> /usr/bin/tmux
set -euo pipefail
die() { echo "debian_tool.sh: $*" >&2; exit 1; }
tool=${1:?usage: debian_tool.sh COMMAND}
case "$tool" in chromium|tmux) ;; *) die "unknown tool $tool (chromium or tmux)";; esac
if ! command -v "$tool" >/dev/null; then
    command -v apt-get >/dev/null || die "$tool is not installed and apt-get is not available"
    log=$(mktemp)
    # One apt at a time (parallel test workers, the SLURM script): dpkg's lock is not a queue.
    exec 9>/tmp/launcher-apt.lock && flock 9
    if command -v "$tool" >/dev/null; then command -v "$tool"; exit 0; fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tool" >"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tool" >>"$log" 2>&1 \
            || { tail -20 "$log" >&2; die "apt-get install $tool failed"; }
    fi
    rm -f "$log"
fi
command -v "$tool"
