#!/usr/bin/env bash
# Install the tools the test suite runs besides Python: promtool (Debian's `prometheus` package), for
# the unit tests of deploy/prometheus/alerts.yml. Does nothing when they are there.
set -euo pipefail

command -v promtool >/dev/null && exit 0
if command -v apt-get >/dev/null; then
  as_root=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && as_root="sudo -n" || { echo "promtool is missing: apt-get install prometheus (as root)" >&2; exit 0; }
  fi
  echo "installing promtool (Debian package prometheus)"
  $as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { $as_root apt-get update -qq && $as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
    || echo "could not install promtool: apt-get install prometheus" >&2
else
  echo "promtool is missing: install Prometheus's promtool (the suite's alert-rule tests need it)" >&2
fi
exit 0
