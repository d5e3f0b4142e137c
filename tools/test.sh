#!/usr/bin/env bash
# Installs what is missing (Python packages, the test bed's binaries) and runs every test,
# integration tests against the real control plane, S3 server and Prometheus included.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuses an environment that already has the dependencies: pip installs only what is missing.
# (A recent setuptools already installed saves fetching one for an isolated build.)
isolation=$(python3 -c 'import setuptools as s; print("--no-build-isolation" if int(s.__version__.split(".")[0]) >= 69 else "")' 2>/dev/null || true)
python3 -m pip install --quiet --disable-pip-version-check $isolation -e '.[jobs,test]'
start=$(date +%s)
./tools/build-testbed.sh >/dev/null
echo "test bed binaries ready in $(( $(date +%s) - start ))s"
python3 -m ruff check .
lint-imports
python3 -m mixtura_operator.cli crds --check
exec python3 -m pytest "$@"
