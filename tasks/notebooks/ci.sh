#!/usr/bin/env bash
# CI: installs Jupyter's client (Debian) and Deno's kernel, then executes the notebooks headless.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
need=0
for pkg in python3-nbclient jupyter-nbconvert jupyter-client; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need=1
done
if [ "$need" = 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3-nbclient jupyter-nbconvert jupyter-client >/dev/null
fi
deno jupyter --install --force >/dev/null 2>&1
deno task notebooks
