#!/bin/bash
# Installs the unpacked agent artifact this script sits in and (re)starts its systemd unit.
#   FLEETFOLD_NODE  absolute path of a Node.js >= 22 (default: `node` on PATH); linked as bin/node
#   FLEETFOLD_ROOT  prefix of every path written (default: none; tests install into a temporary root)
# Run by the boot script at first boot; run it again from a newer artifact to upgrade in place.
set -euo pipefail
umask 022

source_dir=$(dirname "$(readlink -f "$0")")
root=${FLEETFOLD_ROOT:-}
install_dir="$root/opt/fleetfold/agent"
unit_dir="$root/etc/systemd/system"
unit=fleetfold-agent.service
node=${FLEETFOLD_NODE:-$(command -v node || true)}

fail() {
  echo "fleetfold-agent install: $*" >&2
  exit 1
}

[ -n "$node" ] && [ -x "$node" ] || fail "no Node.js runtime (set FLEETFOLD_NODE or put node on PATH)"
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' ||
  fail "$node is Node.js $("$node" --version 2>/dev/null || echo '?'); the agent needs >= 22"

# Staged next to the old install and swapped in by renames, so the unit never starts half a bundle.
staging="$install_dir.new"
rm -rf "$staging"
install -d -m 0755 "$staging/bin" "$staging/lib"
install -m 0755 "$source_dir/bin/fleetfold-agent" "$staging/bin/fleetfold-agent"
install -m 0644 "$source_dir"/lib/* "$staging/lib/"
install -m 0644 "$source_dir/manifest.json" "$staging/manifest.json"
ln -s "$node" "$staging/bin/node"
install -d -m 0755 "$(dirname "$install_dir")"
rm -rf "$install_dir.old"
[ ! -e "$install_dir" ] || mv "$install_dir" "$install_dir.old"
mv "$staging" "$install_dir"
rm -rf "$install_dir.old"

install -d -m 0755 "$unit_dir"
install -m 0644 "$source_dir/$unit" "$unit_dir/$unit"
systemctl daemon-reload
systemctl enable "$unit"
# restart, not start: an upgrade replaces a running agent.
systemctl restart "$unit"
echo "fleetfold-agent install: installed in $install_dir (node: $node), $unit restarted"
