#!/usr/bin/env bash
# Install hxgw as the systemd service hx-gateway-ml.service. Run as root.
#
#   systemd/install.sh [--prefix DIR] [--extras LIST] [--no-start] [--no-generate-key]
#
# What it does, each step safe to repeat:
#   - a venv at /opt/hxgw/venv (--prefix) with this checkout of hxgw in it
#     (pip honours PIP_FIND_LINKS, PIP_NO_INDEX, ... from the environment,
#     so a local wheel directory works without an index);
#   - the system user hx-gateway (sysusers.d, else useradd);
#   - /etc/systemd/system/hx-gateway-ml.service;
#   - /etc/hxgw/ from etc/hxgw/ (dir 750, files 640, root:hx-gateway),
#     copying only files that are not there yet: never overwrites;
#   - /etc/hx-gateway-ml.env from etc/hx-gateway-ml.env.example, only when
#     absent, mode 640 root:hx-gateway, with a fresh random MASTER_KEY
#     (--no-generate-key: left empty);
#   - systemctl daemon-reload, enable and (re)start, when systemd runs
#     (--no-start: install only).
set -euo pipefail

readonly UNIT=hx-gateway-ml.service
readonly SVC_USER=hx-gateway
readonly DEFAULT_PREFIX=/opt/hxgw/venv
readonly UNIT_DIR=/etc/systemd/system
readonly SYSUSERS_DIR=/etc/sysusers.d
readonly CONFIG_DIR=/etc/hxgw
readonly ENV_FILE=/etc/hx-gateway-ml.env

prefix=$DEFAULT_PREFIX
extras=
start=1
generate_key=1

usage() {
    cat <<EOF
usage: $0 [--prefix DIR] [--extras LIST] [--no-start] [--no-generate-key]
  --prefix DIR        venv to install into (default $DEFAULT_PREFIX)
  --extras LIST       setup.cfg extras to install too, comma-separated
                      (default: none)
  --no-start          install only: do not enable or (re)start $UNIT
  --no-generate-key   leave MASTER_KEY empty in a newly created $ENV_FILE
EOF
}

while (($#)); do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --extras) extras=${2?--extras needs a value}; shift 2 ;;
        --extras=*) extras=${1#*=}; shift ;;
        --no-start) start=0; shift ;;
        --no-generate-key) generate_key=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

say() { printf 'install-systemd: %s\n' "$*"; }
die() { printf 'install-systemd: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root"
[[ $prefix == /* ]] || die "--prefix must be an absolute path"
prefix=${prefix%/}

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f $repo/setup.cfg && -d $repo/hxgw ]] || die "$repo is not an hxgw checkout"

python=${PYTHON:-python3}
"$python" - <<'EOF' || die "$python must be Python >= 3.11 with the venv module (Debian: python3-venv)"
import sys, venv, ensurepip  # noqa: F401
sys.exit(sys.version_info < (3, 11))
EOF

# Everything under the venv must stay readable by the service user, whatever
# root's umask is; secrets get explicit modes below.
umask 022

# --- the venv -----------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

if [[ ! -x $prefix/bin/python ]]; then
    say "creating venv $prefix"
    mkdir -p -- "$(dirname -- "$prefix")"
    "$python" -m venv -- "$prefix"
fi

# Build from a clean copy: pip writes build/ and *.egg-info into the source
# tree, which must not end up root-owned in a developer's checkout (and the
# checkout may be read-only).
tar -C "$repo" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./venv --exclude=./build \
    --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache \
    --exclude=./bench/results . | tar -C "$work" -xf -
target=$work
[[ -n $extras ]] && target="${work}[${extras}]"
say "installing hxgw into $prefix${PIP_FIND_LINKS:+ (find-links: $PIP_FIND_LINKS)}"
"$prefix/bin/python" -m pip install --disable-pip-version-check --quiet \
    --upgrade --upgrade-strategy only-if-needed "$target"
"$prefix/bin/hxgw" --help >/dev/null || die "$prefix/bin/hxgw does not run"

# --- the user -----------------------------------------------------------------
install -d -m 755 "$SYSUSERS_DIR"
install -m 644 "$repo/systemd/hx-gateway.sysusers" "$SYSUSERS_DIR/hx-gateway.conf"
if ! getent passwd "$SVC_USER" >/dev/null; then
    if command -v systemd-sysusers >/dev/null; then
        say "creating system user $SVC_USER (systemd-sysusers)"
        systemd-sysusers "$SYSUSERS_DIR/hx-gateway.conf"
    else
        say "creating system user $SVC_USER (useradd)"
        getent group "$SVC_USER" >/dev/null || groupadd --system "$SVC_USER"
        useradd --system --gid "$SVC_USER" --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "HX Gateway (hxgw)" "$SVC_USER"
    fi
fi
getent passwd "$SVC_USER" >/dev/null || die "no user $SVC_USER after creating it"

# --- the unit -----------------------------------------------------------------
install -d -m 755 "$UNIT_DIR"
sed "s#$DEFAULT_PREFIX/#$prefix/#g" "$repo/systemd/$UNIT" >"$work/$UNIT"
install -m 644 "$work/$UNIT" "$UNIT_DIR/$UNIT"
say "installed $UNIT_DIR/$UNIT"

# --- the config: never overwrite ----------------------------------------------
if [[ ! -d $CONFIG_DIR ]]; then
    install -d -m 750 -o root -g "$SVC_USER" "$CONFIG_DIR"
    say "created $CONFIG_DIR"
fi
for src in "$repo"/etc/hxgw/*; do
    [[ -f $src ]] || continue
    dst=$CONFIG_DIR/$(basename -- "$src")
    if [[ -e $dst ]]; then
        say "kept existing $dst"
    else
        install -m 640 -o root -g "$SVC_USER" "$src" "$dst"
        say "created $dst"
    fi
done

# --- the environment file: never overwrite, never print the key ---------------
if [[ -e $ENV_FILE ]]; then
    say "kept existing $ENV_FILE"
else
    # The key is made and written inside Python, so it never shows in a
    # process list or on the terminal.
    HXGW_GENERATE_KEY=$generate_key "$python" - "$repo/etc/hx-gateway-ml.env.example" \
        "$work/env" <<'EOF'
import os, re, secrets, sys

src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
if os.environ["HXGW_GENERATE_KEY"] == "1":
    key = "sk-" + secrets.token_urlsafe(32)
    text, n = re.subn(r"(?m)^MASTER_KEY=$", lambda _: "MASTER_KEY=" + key, text)
    if n != 1:
        sys.exit("no empty MASTER_KEY= line in " + src)
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)
EOF
    install -m 640 -o root -g "$SVC_USER" "$work/env" "$ENV_FILE"
    if ((generate_key)); then
        say "created $ENV_FILE with a new random MASTER_KEY (read it there)"
    else
        say "created $ENV_FILE: set MASTER_KEY in it before starting $UNIT"
    fi
fi

# --- systemd ------------------------------------------------------------------
if [[ ! -d /run/systemd/system ]]; then
    say "systemd is not running here: not reloading or starting $UNIT"
    exit 0
fi
systemctl daemon-reload
if ((start)); then
    systemctl enable --quiet "$UNIT"
    systemctl restart "$UNIT"
    say "$UNIT is $(systemctl is-active "$UNIT")"
else
    say "not started (--no-start); to start: systemctl enable --now $UNIT"
fi
