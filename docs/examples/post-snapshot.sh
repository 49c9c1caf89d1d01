#!/usr/bin/env bash
# Posts one fleetfold snapshot with nothing but bash, jq (1.6 or newer), openssl, curl (7.75 or newer) and GNU date:
# the host protocol of docs/host-protocol.md without Node. test/host-protocol.int.test.ts runs it against the
# embedded cloud.
#
#   post-snapshot.sh STATE.json            normalise, sign and PUT the machine state in STATE.json ("-": stdin)
#   post-snapshot.sh --print STATE.json    print the MAC input (context line + canonical JSON), then the body,
#                                          and PUT nothing
#
# Environment:
#   FLEETFOLD_HOST_ID      the registered host id (POST /hosts)
#   FLEETFOLD_SECRET       the host's secret as registration returned it (or FLEETFOLD_SECRET_FILE)
#   FLEETFOLD_BUCKET       the snapshot bucket
#   AWS_REGION             the bucket's region
#   FLEETFOLD_S3_ENDPOINT  default https://s3.$AWS_REGION.amazonaws.com (path-style: $endpoint/$bucket/$key)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional): the credentials to sign the PUT with
#   FLEETFOLD_SEQ          default: max(last + 1, now in ms), the last one kept in FLEETFOLD_SEQ_FILE if set
#   FLEETFOLD_SIGNED_AT    default: now, as YYYY-MM-DDTHH:MM:SS.mmmZ
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
print_only=false
if [[ ${1:-} == --print ]]; then
  print_only=true
  shift
fi
state_file=${1:?usage: post-snapshot.sh [--print] STATE.json}
state_input=("$state_file")
if [[ $state_file == - ]]; then state_input=(); fi

fail() {
  echo "post-snapshot: $*" >&2
  exit 1
}
need() { [[ -n ${!1:-} ]] || fail "$1 is not set"; }

need FLEETFOLD_HOST_ID
host_id=$FLEETFOLD_HOST_ID
[[ $host_id =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]] || fail "FLEETFOLD_HOST_ID \"$host_id\" is not a host id"
if [[ -z ${FLEETFOLD_SECRET:-} && -n ${FLEETFOLD_SECRET_FILE:-} ]]; then
  FLEETFOLD_SECRET=$(tr -d '[:space:]' <"$FLEETFOLD_SECRET_FILE")
fi
need FLEETFOLD_SECRET

# Sequence: strictly increasing per host; the millisecond clock keeps it so across lost state files, the
# file across a clock stepped back (as agent/sequence.ts does).
if [[ -n ${FLEETFOLD_SEQ:-} ]]; then
  seq=$FLEETFOLD_SEQ
else
  seq=$(date +%s%3N)
  if [[ -n ${FLEETFOLD_SEQ_FILE:-} && -s $FLEETFOLD_SEQ_FILE ]]; then
    last=$(<"$FLEETFOLD_SEQ_FILE")
    if ((last + 1 > seq)); then seq=$((last + 1)); fi
  fi
fi
[[ $seq =~ ^[1-9][0-9]{0,15}$ ]] && ((seq <= 9007199254740991)) || fail "sequence \"$seq\" is out of range"
signed_at=${FLEETFOLD_SIGNED_AT:-$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)}

# The verifier MACs the state as its schema normalises it, defaults filled in (shared/schemas.ts): a state
# that leaves a defaulted member out must be signed with the default in its place, so it is filled in here.
normalise='
  .config.values //= {}
  | .software = ((.software // {}) | map_values(.status //= "running"))
  | .operational.load //= 0
  | .operational.sessions = ({voice: 0, sms: 0, mms: 0, video: 0} + (.operational.sessions // {}))
  | .operational.dataRefs //= []'

# The MAC input: the context line, then the RFC 8785 form of {hostId, seq, signedAt, state}. `jq -S -c` is
# that form only for documents jcs_checked lets through; anything else is refused, never signed wrongly.
canonical=$(jq -L "$here" -S -c \
  --arg hostId "$host_id" --argjson seq "$seq" --arg signedAt "$signed_at" \
  "include \"jcs\"; {hostId: \$hostId, seq: \$seq, signedAt: \$signedAt, state: (. | $normalise)} | jcs_checked" \
  "${state_input[@]}") || fail "the state in $state_file cannot be signed"

context=$'fleetfold-snapshot-v1\n'
# openssl takes the key as text: the HMAC key is the secret's own characters, exactly as registration gave it.
mac=$(printf '%s%s' "$context" "$canonical" | openssl dgst -sha256 -hmac "$FLEETFOLD_SECRET" -r | cut -d' ' -f1)
[[ $mac =~ ^[0-9a-f]{64}$ ]] || fail "openssl did not return an HMAC-SHA256"
body=$(jq -c --arg signature "hmac-sha256=$mac" '. + {signature: $signature}' <<<"$canonical")
key="snapshots/$host_id/$seq.json"

if $print_only; then
  printf '%s%s\n%s\n' "$context" "$canonical" "$body"
  exit 0
fi

need FLEETFOLD_BUCKET
need AWS_REGION
need AWS_ACCESS_KEY_ID
need AWS_SECRET_ACCESS_KEY
endpoint=${FLEETFOLD_S3_ENDPOINT:-https://s3.$AWS_REGION.amazonaws.com}
# S3 wants the payload's SHA-256 in x-amz-content-sha256; curl signs that header and uses it as the payload hash.
payload_sha=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
headers=(-H 'Content-Type: application/json' -H "x-amz-content-sha256: $payload_sha")
if [[ -n ${AWS_SESSION_TOKEN:-} ]]; then headers+=(-H "x-amz-security-token: $AWS_SESSION_TOKEN"); fi
# Kept before the PUT: a crash right after an upload must not issue this number again.
if [[ -n ${FLEETFOLD_SEQ_FILE:-} ]]; then printf '%s\n' "$seq" >"$FLEETFOLD_SEQ_FILE"; fi

printf '%s' "$body" | curl --silent --show-error --fail --max-time 10 -X PUT \
  --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  "${headers[@]}" --data-binary @- "$endpoint/$FLEETFOLD_BUCKET/$key" >/dev/null ||
  fail "PUT $key failed"
printf '%s\n' "$key"
