# Sourced by the scripts that check or measure the running services: what they share.

# skip NAME REASON: says why NAME cannot run on this machine (no root, no engine), then
# exits: 0 (skipped), or 1 under CI=true, where every check must run.
skip() {
    echo "$1: $2" >&2
    if [ "${CI:-}" = true ]; then
        echo "$1: under CI=true this is a failure" >&2
        exit 1
    fi
    echo "$1: skipped" >&2
    exit 0
}

# complete_answers ADDRESS: how many /products answers the catalog at ADDRESS has served
# with every discount (its metrics).
complete_answers() {
    curl -sf -H 'Accept: text/plain' "http://$1/metrics" |
        awk '/^catalog_products_responses_total\{discount_status="complete"\}/ {n = $2} END {print n + 0}'
}
