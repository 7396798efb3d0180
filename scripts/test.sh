#!/usr/bin/env bash
# The README's test command: set up (package, test extras, an OpenSSH server for the SSH target's
# tests, which start their own sshd on 127.0.0.1, and cron for the scheduling tests), then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
{ [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null; } || missing+=(openssh-server openssh-client)
command -v crontab >/dev/null || missing+=(cron)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed and cannot be installed here; the tests that need them will be skipped" >&2
  fi
fi
python3 -m pytest -q tests
