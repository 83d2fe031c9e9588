#!/usr/bin/env bash
# Install litellm[proxy] at the pinned version into its own venv under the
# cache dir, once, and print the path of its `litellm` executable on stdout.
# Everything else goes to stderr. Safe to run concurrently and repeatedly:
# a venv with the pinned version and constraints is reused as it is.
#
#   HXGW_CACHE_DIR         cache root (default /var/cache/hxgw)
#   HXGW_LITELLM_VERSION   version to install (default: the pin below; another
#                          version installs without litellm-constraints.txt)
#   HXGW_LITELLM_PYTHON    interpreter for the venv (default python3)
set -euo pipefail

pinned=1.102.4
version="${HXGW_LITELLM_VERSION:-$pinned}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
constraints=()
want="$version"
if [[ $version == "$pinned" ]]; then
    constraints=(-c "$here/litellm-constraints.txt")
    want="$version $(sha256sum "$here/litellm-constraints.txt" | cut -c1-16)"
fi
python="${HXGW_LITELLM_PYTHON:-python3}"
cache="${HXGW_CACHE_DIR:-/var/cache/hxgw}"
venv="$cache/litellm-venv"
exe="$venv/bin/litellm"
stamp="$venv/.hxgw-litellm-version"

say() { printf 'ensure_litellm: %s\n' "$*" >&2; }

installed() {
    [[ -x $exe && -f $stamp && "$(<"$stamp")" == "$want" ]] &&
        "$venv/bin/python" -c '' 2>/dev/null  # its interpreter is still there
}

mkdir -p "$cache"
exec 9>"$cache/.litellm-venv.lock"
flock 9

if installed; then
    echo "$exe"
    exit 0
fi

if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing python3-venv (needed for python -m venv)"
        apt-get install -y -q python3-venv >&2 || {
            apt-get update -q >&2 && apt-get install -y -q python3-venv >&2
        }
    else
        say "$python cannot create venvs; install python3-venv" && exit 1
    fi
fi

say "installing litellm[proxy]==$version into $venv (takes a minute or two)"
start=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
# pip warns about every missing local index; keep only what matters.
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "${constraints[@]}" "litellm[proxy]==$version" 2>&1 | { grep -v 'is ignored: it is neither' || true; } >&2
# Prove the proxy extras import before the venv is declared usable.
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c 'import litellm.proxy.proxy_server' >&2
[[ -x $exe ]] || { say "no executable at $exe after install"; exit 1; }
echo "$want" >"$stamp"
say "installed in $((SECONDS - start)) s, $(du -sh "$venv" | cut -f1)"
echo "$exe"
