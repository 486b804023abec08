#!/bin/sh
# Creates, once per cluster, every Secret the province and national overlays reference
# but never contain (README.md, "Secrets"). A Secret that exists is left alone: the
# identity PII key in particular must never change once members have registered.
#
#   deploy/k8s/provide-secrets.sh [NAMESPACE] [SIGNING_KEYS_DIR]
#
# SIGNING_KEYS_DIR holds identity's signing keys (python -m sotay_identity.cli keygen DIR);
# the TLS certificate (Secret sotay-tls) comes from your CA or cert-manager, not from here.
set -eu
ns="${1:-sotay}"
keys="${2:-}"

random() { openssl rand -hex 32; }

create() {  # name key: a generic Secret with one random value, unless it exists
  if kubectl -n "$ns" get secret "$1" >/dev/null 2>&1; then
    echo "kept    $1"
  else
    # The value goes through a file, not the command line (ps would show it).
    file=$(mktemp)
    random | tr -d '\n' >"$file"
    kubectl -n "$ns" create secret generic "$1" --from-file="$2=$file" >/dev/null
    rm -f "$file"
    echo "created $1"
  fi
}

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
create redis-auth password
create identity-secrets pii-key
create meetings-secrets checkin-secret
for service in org-tree identity meetings content learning feedback reporting; do
  create "sotay-mongodb-$service-password" password
done
if kubectl -n "$ns" get secret identity-signing-keys >/dev/null 2>&1; then
  echo "kept    identity-signing-keys"
elif [ -n "$keys" ]; then
  kubectl -n "$ns" create secret generic identity-signing-keys --from-file="$keys" >/dev/null
  echo "created identity-signing-keys"
else
  echo "missing identity-signing-keys: python -m sotay_identity.cli keygen KEYS_DIR, then rerun with KEYS_DIR" >&2
  exit 1
fi
