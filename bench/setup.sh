#!/usr/bin/env bash
# Install the benchmark's load generator (wrk), reference proxy (nginx) and
# instruction counter (valgrind) from Debian's packages. Idempotent: does nothing
# when all are already there.
# Services are not started by the install: nginx is only ever run by bench/run.py,
# on loopback, with a generated config, for the length of a run.
set -euo pipefail

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v callgrind_control >/dev/null || need+=(valgrind)
if [ ${#need[@]} -eq 0 ]; then
    echo "bench/setup.sh: wrk, nginx and valgrind are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/setup.sh: need root to install ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi

# Keep apt from starting (and enabling) a system nginx on port 80: a
# policy-rc.d that refuses every service start, only for this install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

echo "bench/setup.sh: installing ${need[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}"
