#!/usr/bin/env bash
# Run the gateway from this checkout. Without HX_LITELLM_UPSTREAM it also
# starts the built-in demo upstream on 127.0.0.1:4000 (HX_DEMO_PORT moves it),
# so that the whole path works on a machine with no LiteLLM. Without
# MASTER_KEY it makes a random client key for this run. It prints the lines
# to paste into another shell to try it: they work as printed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
hxgw="$venv/bin/hxgw"

export_line="# MASTER_KEY is the one you set for this run"
if [ -z "${MASTER_KEY:-}" ]; then
    MASTER_KEY="sk-demo-$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))')"
    export_line="export MASTER_KEY=$MASTER_KEY"
fi
export MASTER_KEY

demo_pid=
if [ -z "${HX_LITELLM_UPSTREAM:-}" ]; then
    demo_port=${HX_DEMO_PORT:-4000}
    "$hxgw" demo-upstream --host 127.0.0.1 --port "$demo_port" &
    demo_pid=$!
    export HX_LITELLM_UPSTREAM=http://127.0.0.1:$demo_port
fi
trap '[ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true' EXIT

# The usage ledger and key store of this checkout's runs (hxgw usage reads it too).
export HX_STATE_DIR=${HX_STATE_DIR:-$PWD/.hxgw-state}

port=${HX_PORT:-4010}
cat <<MSG
The hxgw command is $venv/bin/hxgw (try $venv/bin/hxgw --help, or: . $venv/bin/activate).
Gateway on http://127.0.0.1:$port, upstream $HX_LITELLM_UPSTREAM. In another shell, try:

  $export_line
  export HX_STATE_DIR=$HX_STATE_DIR
  curl -s http://127.0.0.1:$port/v1/chat/completions -H "Authorization: Bearer \$MASTER_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{"model":"hx-chat","messages":[{"role":"user","content":"Return exactly the text: HX-OK"}]}'

MSG
"$hxgw" serve --config-dir "${HX_CONFIG_DIR:-etc/hxgw}" --host "${HX_HOST:-127.0.0.1}" --port "$port"
