#!/usr/bin/env bash
# Verifies one inbox message (the SQS body) from the fleetfold control plane with bash, jq and openssl, as
# docs/host-protocol.md, "The inbox", says; prints what may be acted on, or exits 1 saying why not.
#
#   verify-envelope.sh PUBLIC.pem < BODY.json
#
# A state envelope (it names a hostId): prints the desired state. When the state travelled by reference, pass
# the object fetched from S3 (GET s3://$bucket/$key of .ref) as FLEETFOLD_STATE_OBJECT: its SHA-256 must be
# the signed one. A broadcast (no hostId, a role): prints the broadcast, when it is for this group and a role
# of this host and was signed within 15 minutes of this host's clock.
#
# Environment: FLEETFOLD_HOST_ID; for broadcasts FLEETFOLD_GROUP and FLEETFOLD_ROLES (comma-separated);
# FLEETFOLD_NOW (epoch seconds, default now). What the caller still owns: applying only a stateVersion above the
# one it last applied, and acting on a broadcast's messageId at most once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
public_key=${1:?usage: verify-envelope.sh PUBLIC.pem < BODY.json}
fail() {
  echo "verify-envelope: $*" >&2
  exit 1
}
: "${FLEETFOLD_HOST_ID:?FLEETFOLD_HOST_ID is not set}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/body.json"
jq -e 'type == "object" and (.signature | type == "string") and (.signedAt | type == "string") and (.keyId | type == "string")' \
  "$work/body.json" >/dev/null 2>&1 || fail "malformed: not an envelope"

if jq -e 'has("hostId")' "$work/body.json" >/dev/null; then
  kind=state
  context=$'fleetfold-state-v1\n'
  members='["state","ref","hostId","stateVersion","signedAt","keyId"]'
elif jq -e '.role | type == "string"' "$work/body.json" >/dev/null; then
  kind=broadcast
  context=$'fleetfold-broadcast-v2\n'
  members='["group","role","payload","messageId","signedAt","keyId"]'
else
  fail "malformed: neither a state envelope nor a broadcast"
fi

# The signed bytes: the context line, then the RFC 8785 form of exactly these members, those present.
{
  printf '%s' "$context"
  jq -L "$here" -S -c -j --argjson members "$members" \
    'include "jcs"; with_entries(select(.key as $k | $members | index($k))) | jcs_checked' "$work/body.json" ||
    fail "malformed: cannot be canonicalised with jq"
} >"$work/message"
# The signature is base64 of the DER (ASN.1) encoding of (r, s), which is what openssl expects.
jq -r .signature "$work/body.json" | base64 -d >"$work/signature.der" 2>/dev/null || fail "bad-signature: not base64"
openssl dgst -sha256 -verify "$public_key" -signature "$work/signature.der" "$work/message" >/dev/null 2>&1 ||
  fail "bad-signature: does not verify with $public_key"

if [[ $kind == broadcast ]]; then
  : "${FLEETFOLD_GROUP:?FLEETFOLD_GROUP is not set}" "${FLEETFOLD_ROLES:?FLEETFOLD_ROLES is not set}"
  jq -e --arg group "$FLEETFOLD_GROUP" --arg roles "$FLEETFOLD_ROLES" \
    '.role as $role | .group == $group and ($roles | split(",") | any(. == $role))' "$work/body.json" >/dev/null ||
    fail "not-for-me: addressed to another group or role"
  jq -e --argjson now "${FLEETFOLD_NOW:-$(date +%s)}" \
    '(.signedAt | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) as $at | ($now - $at | if . < 0 then -. else . end) <= 900' \
    "$work/body.json" >/dev/null 2>&1 || fail "stale: signed more than 15 minutes from this host's clock"
  jq . "$work/body.json"
  exit 0
fi

jq -e --arg me "$FLEETFOLD_HOST_ID" '.hostId == $me' "$work/body.json" >/dev/null ||
  fail "not-for-me: addressed to $(jq -r .hostId "$work/body.json")"
if jq -e 'has("state")' "$work/body.json" >/dev/null; then
  jq '.state' "$work/body.json" >"$work/state.json"
else
  object=${FLEETFOLD_STATE_OBJECT:?the state travelled by reference: fetch .ref and pass it as FLEETFOLD_STATE_OBJECT}
  expected=$(jq -r .ref.sha256 "$work/body.json")
  actual=$(openssl dgst -sha256 -r "$object" | cut -d' ' -f1)
  [[ $actual == "$expected" ]] || fail "digest-mismatch: $object is not the signed state"
  jq . "$object" >"$work/state.json" || fail "malformed: $object is not JSON"
fi
jq -e --slurpfile envelope "$work/body.json" \
  '.hostId == $envelope[0].hostId and .stateVersion == $envelope[0].stateVersion' "$work/state.json" >/dev/null ||
  fail "inconsistent: the state names another host or version than its envelope"
cat "$work/state.json"
