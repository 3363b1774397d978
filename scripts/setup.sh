#!/usr/bin/env bash
# Installs exactly the Debian 12 packages bitfusion's build and tests need. Idempotent: installs
# only what is missing and runs `apt-get update` only when something is.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-all-dev          # Process v2, JSON, URL, Program_options, Filesystem
  libssl-dev libcurl4-openssl-dev libcereal-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
  clang libclang-rt-14-dev      # libFuzzer and clang's sanitizers: scripts/fuzz.sh (fuzz/)
  python3 python3-pytest        # end-to-end CLI tests (Debian's python, not PyPI)
  python3-dev pybind11-dev      # the Python module
  python3-pip python3-setuptools python3-wheel python3-venv  # pip install . (offline)
  python3-mypy python3-numpy    # stubs checked by mypy; zero-copy columns checked with numpy
  sqlite3                       # looking at results by hand
  docker.io busybox-static      # docker:// tests start their own dockerd on a busybox-static image
  openssl                       # certificates for the mutual-TLS engine test
  zlib1g-dev                    # gzip'd request bodies, spool checksums
  libre2-dev                    # linear-time regular expressions (redaction, log waits)
  influxdb                      # influx:// sink tests start their own InfluxDB 1.x
  libpq-dev postgresql           # postgres:// sink (libpq); its tests start their own server
  python3-elasticsearch         # Elastic's Python client: checks the es:// fake, benchmark reference
  chromium                      # headless: the report test renders bitfusion report's page
  openssh-server openssh-client iproute2  # static:// tests: their own sshd, one in a netns
  slurmctld slurmd slurm-client munge slurmrestd  # slurm:// tests start their own single-node Slurm
  slurm-wlm-jwt-plugin          # auth/jwt: the slurm:// test of slurmrestd over TCP with a token
  docker-registry               # image distribution tests push to and pull from their own registry
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
