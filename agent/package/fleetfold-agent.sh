#!/bin/sh
# bin/fleetfold-agent: runs the bundled agent (lib/fleetfold-agent.mjs) on Node.js >= 22.
# install.sh links bin/node to the runtime the boot script chose; without that link, the first `node` on PATH.
set -eu
here=$(dirname "$(readlink -f "$0")")
node="$here/node"
[ -x "$node" ] || node=node
exec "$node" --enable-source-maps "$here/../lib/fleetfold-agent.mjs" "$@"
