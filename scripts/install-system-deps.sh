#!/usr/bin/env bash
# Installs the system packages the platform needs (Debian/Ubuntu), only when missing:
# Java 17 for Spark, PostgreSQL server binaries for the local stack, python3-venv for the
# Makefile's `$PYTHON -m venv` (Debian ships ensurepip apart from Python), procps for `ps`
# (the tests look for leftover processes with it), and Chromium for the browser test of
# the Dagster UI (test_ui.py). Chromium is optional: where it cannot be installed (not
# root, no apt) the install goes on and that one test is skipped, saying why.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
"${PYTHON:-python3}" -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v ps >/dev/null 2>&1 || need+=(procps)
want=()
[ -x /usr/bin/chromium ] || want+=(chromium)
[ ${#need[@]} -eq 0 ] && [ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  [ ${#want[@]} -gt 0 ] && echo "not installing ${want[*]} (needs root and apt-get): the browser test will be skipped" >&2
  if [ ${#need[@]} -gt 0 ]; then
    echo "missing system packages: ${need[*]} (install them, e.g. apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  exit 0
fi
echo "installing ${need[*]} ${want[*]}"
apt-get update -qq
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ${#want[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${want[@]}" \
    || echo "could not install ${want[*]}: the browser test will be skipped" >&2
fi
# Debian's postgresql package starts a system cluster; the platform runs its own.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop || true; done
fi
