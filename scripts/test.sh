#!/usr/bin/env bash
# The README's test command: set up (package, test extras, and an OpenSSH server for the SSH
# target's tests, which start their own sshd on 127.0.0.1), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/sbin/sshd ] && ! command -v sshd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
  else
    echo "note: openssh-server is not installed and cannot be installed here; the SSH tests will be skipped" >&2
  fi
fi
python3 -m pytest -q tests
