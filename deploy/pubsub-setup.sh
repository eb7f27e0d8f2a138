#!/usr/bin/env bash
# Creates (or brings up to date) the Pub/Sub resources of DelightBridge Sync with gcloud.
# Safe to run again: every resource is described first and created only when missing;
# an existing subscription is updated to the settings below; IAM bindings are additive.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: deploy/pubsub-setup.sh [-h|--help]

Creates, in PUBSUB_PROJECT:
  1. the topic Gmail's users.watch() publishes to, and grants Gmail's push service
     account (gmail-api-push@system.gserviceaccount.com) roles/pubsub.publisher on it;
  2. a dead-letter topic, with a subscription that keeps what lands there;
  3. the consumer's subscription: ack deadline, retry policy (exponential backoff),
     dead-letter policy, no expiry; a push subscription when PUSH_ENDPOINT is set;
  4. the IAM dead-lettering needs: the project's Pub/Sub service agent may publish to
     the dead-letter topic and subscribe to the subscription.

Parameters (environment variables; the first three are the service's own):
  PUBSUB_PROJECT            Google Cloud project (required)
  PUBSUB_TOPIC              topic id (default gmail-push)
  PUBSUB_SUBSCRIPTION       subscription id (default gmail-push-sync)
  DEAD_LETTER_TOPIC         default ${PUBSUB_TOPIC}-dead-letter
  DEAD_LETTER_SUBSCRIPTION  default ${DEAD_LETTER_TOPIC}-hold
  ACK_DEADLINE              seconds, 10..600 (default 600)
  MIN_RETRY_DELAY           default 10s
  MAX_RETRY_DELAY           default 600s
  MAX_DELIVERY_ATTEMPTS     5..100 (default 10)
  MESSAGE_RETENTION         default 7d
  PUSH_ENDPOINT             https URL of the consumer's POST /pubsub/push (Cloud Run):
                            makes the subscription a push subscription
  PUSH_SERVICE_ACCOUNT      service account whose OIDC token authenticates pushes
                            (required with PUSH_ENDPOINT)
  PUSH_AUDIENCE             audience of that token (default PUSH_ENDPOINT)
  CONSUMER_SERVICE_ACCOUNT  if set, granted roles/pubsub.subscriber on the subscription
  PROJECT_NUMBER            skips the `gcloud projects describe` lookup
  ENABLE_APIS               true (default): enable pubsub and gmail APIs first
  PUBSUB_EMULATOR_HOST      host:port of the Pub/Sub emulator: create the topics and
                            subscriptions there and skip API enabling and IAM
  GCLOUD                    gcloud executable (default gcloud)
USAGE
}

log() { printf 'pubsub-setup: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 2; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

GCLOUD="${GCLOUD:-gcloud}"
PUBSUB_PROJECT="${PUBSUB_PROJECT:-}"
PUBSUB_TOPIC="${PUBSUB_TOPIC:-gmail-push}"
PUBSUB_SUBSCRIPTION="${PUBSUB_SUBSCRIPTION:-gmail-push-sync}"
DEAD_LETTER_TOPIC="${DEAD_LETTER_TOPIC:-${PUBSUB_TOPIC##*/}-dead-letter}"
DEAD_LETTER_SUBSCRIPTION="${DEAD_LETTER_SUBSCRIPTION:-}"
# A full sync of a mailbox can take minutes, so a short deadline would hand the same
# notification to a second consumer mid-sync. 600 s is Pub/Sub's maximum; the
# consumer's client library also extends the lease of every message it still works on.
ACK_DEADLINE="${ACK_DEADLINE:-600}"
MIN_RETRY_DELAY="${MIN_RETRY_DELAY:-10s}"
MAX_RETRY_DELAY="${MAX_RETRY_DELAY:-600s}"
MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-10}"
MESSAGE_RETENTION="${MESSAGE_RETENTION:-7d}"
PUSH_ENDPOINT="${PUSH_ENDPOINT:-}"
PUSH_SERVICE_ACCOUNT="${PUSH_SERVICE_ACCOUNT:-}"
PUSH_AUDIENCE="${PUSH_AUDIENCE:-${PUSH_ENDPOINT}}"
CONSUMER_SERVICE_ACCOUNT="${CONSUMER_SERVICE_ACCOUNT:-}"
PROJECT_NUMBER="${PROJECT_NUMBER:-}"
ENABLE_APIS="${ENABLE_APIS:-true}"
PUBSUB_EMULATOR_HOST="${PUBSUB_EMULATOR_HOST:-}"

GMAIL_PUBLISHER="gmail-api-push@system.gserviceaccount.com"

# ------------------------------------------------------------------ checks

[[ -n "$PUBSUB_PROJECT" ]] || { usage >&2; fail "PUBSUB_PROJECT is not set"; }

# A short id, or the full path projects/PUBSUB_PROJECT/KIND/ID (as the service accepts).
short_id() {
  local kind="$1" value="$2"
  if [[ "$value" == projects/* ]]; then
    [[ "$value" == "projects/${PUBSUB_PROJECT}/${kind}/"* ]] \
      || fail "$value is not in project $PUBSUB_PROJECT"
    value="${value#"projects/${PUBSUB_PROJECT}/${kind}/"}"
  fi
  [[ "$value" =~ ^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$ ]] || fail "invalid ${kind%s} id: $value"
  printf '%s' "$value"
}
TOPIC="$(short_id topics "$PUBSUB_TOPIC")"
SUBSCRIPTION="$(short_id subscriptions "$PUBSUB_SUBSCRIPTION")"
DLQ_TOPIC="$(short_id topics "$DEAD_LETTER_TOPIC")"
DLQ_SUBSCRIPTION="$(short_id subscriptions "${DEAD_LETTER_SUBSCRIPTION:-${DLQ_TOPIC}-hold}")"

in_range() { [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }
in_range "$ACK_DEADLINE" 10 600 || fail "ACK_DEADLINE must be 10..600 seconds, got $ACK_DEADLINE"
in_range "$MAX_DELIVERY_ATTEMPTS" 5 100 \
  || fail "MAX_DELIVERY_ATTEMPTS must be 5..100, got $MAX_DELIVERY_ATTEMPTS"
if [[ -n "$PUSH_ENDPOINT" ]]; then
  [[ "$PUSH_ENDPOINT" == https://* || -n "$PUBSUB_EMULATOR_HOST" ]] \
    || fail "PUSH_ENDPOINT must be an https:// URL"
  [[ -n "$PUSH_SERVICE_ACCOUNT" ]] \
    || fail "PUSH_SERVICE_ACCOUNT is required with PUSH_ENDPOINT (the consumer checks the OIDC token)"
fi

emulator=false
if [[ -n "$PUBSUB_EMULATOR_HOST" ]]; then
  emulator=true
  # gcloud talks to the emulator's REST API; it wants a credential, which the emulator
  # ignores, so it gets a throwaway token instead of the caller's login.
  export CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB="http://${PUBSUB_EMULATOR_HOST}/"
  token_file="$(mktemp)"
  trap 'rm -f "$token_file"' EXIT
  printf 'emulator\n' >"$token_file"
  export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE="$token_file"
  log "using the Pub/Sub emulator at $PUBSUB_EMULATOR_HOST (no API enabling, no IAM)"
fi
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

# ------------------------------------------------------------------ helpers

gc() { "$GCLOUD" "$@" --project="$PUBSUB_PROJECT" --quiet; }

exists() { gc "$@" --format="value(name)" >/dev/null 2>&1; }

ensure_topic() {
  if exists pubsub topics describe "$1"; then
    log "topic $1 exists"
  else
    gc pubsub topics create "$1"
  fi
}

grant() { # grant topics|subscriptions NAME MEMBER ROLE
  gc pubsub "$1" add-iam-policy-binding "$2" --member="$3" --role="$4" --format=none
}

# ------------------------------------------------------------------ steps

if [[ "$emulator" == false && "$ENABLE_APIS" == true ]]; then
  gc services enable pubsub.googleapis.com gmail.googleapis.com
fi

# 1. The topic Gmail publishes to. Gmail's push service account must be allowed to
#    publish (an organization policy restricting IAM domains has to allow it).
ensure_topic "$TOPIC"
if [[ "$emulator" == false ]]; then
  grant topics "$TOPIC" "serviceAccount:${GMAIL_PUBLISHER}" roles/pubsub.publisher
fi

# 2. Dead-letter topic, and a subscription on it: Pub/Sub drops messages published to
#    a topic nobody subscribes to, so without it dead letters would simply vanish.
ensure_topic "$DLQ_TOPIC"
if exists pubsub subscriptions describe "$DLQ_SUBSCRIPTION"; then
  log "subscription $DLQ_SUBSCRIPTION exists"
else
  gc pubsub subscriptions create "$DLQ_SUBSCRIPTION" --topic="$DLQ_TOPIC" \
    --message-retention-duration="$MESSAGE_RETENTION" --expiration-period=never
fi

# 3. The consumer's subscription. Retries back off from MIN to MAX_RETRY_DELAY; after
#    MAX_DELIVERY_ATTEMPTS a notification goes to the dead-letter topic (the consumer's
#    safety-net sweep still syncs the mailbox later). Never expires when idle.
settings=(
  --ack-deadline="$ACK_DEADLINE"
  --min-retry-delay="$MIN_RETRY_DELAY"
  --max-retry-delay="$MAX_RETRY_DELAY"
  --dead-letter-topic="$DLQ_TOPIC"
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
  --message-retention-duration="$MESSAGE_RETENTION"
)
if [[ "$emulator" == false ]]; then
  settings+=(--expiration-period=never) # the emulator cannot update expiration policies
fi
if [[ -n "$PUSH_ENDPOINT" ]]; then
  # Push variant (e.g. the consumer on Cloud Run with CONSUMER_MODE=push): Pub/Sub
  # POSTs each message with an OIDC token of PUSH_SERVICE_ACCOUNT for PUSH_AUDIENCE.
  # The caller needs iam.serviceAccounts.actAs on that account.
  settings+=(
    --push-endpoint="$PUSH_ENDPOINT"
    --push-auth-service-account="$PUSH_SERVICE_ACCOUNT"
    --push-auth-token-audience="$PUSH_AUDIENCE"
  )
fi
if exists pubsub subscriptions describe "$SUBSCRIPTION"; then
  log "subscription $SUBSCRIPTION exists: updating its settings"
  gc pubsub subscriptions update "$SUBSCRIPTION" "${settings[@]}"
else
  gc pubsub subscriptions create "$SUBSCRIPTION" --topic="$TOPIC" "${settings[@]}"
fi

# 4. Dead-lettering runs as the project's Pub/Sub service agent: it must be able to
#    publish to the dead-letter topic and to acknowledge on the source subscription.
if [[ "$emulator" == false ]]; then
  if [[ -z "$PROJECT_NUMBER" ]]; then
    PROJECT_NUMBER="$("$GCLOUD" projects describe "$PUBSUB_PROJECT" --format="value(projectNumber)")"
  fi
  [[ "$PROJECT_NUMBER" =~ ^[0-9]+$ ]] || fail "could not find the number of project $PUBSUB_PROJECT"
  agent="serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
  grant topics "$DLQ_TOPIC" "$agent" roles/pubsub.publisher
  grant subscriptions "$SUBSCRIPTION" "$agent" roles/pubsub.subscriber
  if [[ -n "$CONSUMER_SERVICE_ACCOUNT" ]]; then
    grant subscriptions "$SUBSCRIPTION" "serviceAccount:${CONSUMER_SERVICE_ACCOUNT}" \
      roles/pubsub.subscriber
  fi
fi

log "done: projects/${PUBSUB_PROJECT}/topics/${TOPIC} -> projects/${PUBSUB_PROJECT}/subscriptions/${SUBSCRIPTION}" \
  "(dead letters: projects/${PUBSUB_PROJECT}/topics/${DLQ_TOPIC})"
