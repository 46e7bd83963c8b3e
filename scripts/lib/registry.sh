# Sourced by scripts that fetch from a package registry (Debian's mirror, PyPI, npm,
# crates.io): every fetch goes through from_registry, which retries what fails for a reason
# outside the project (a mirror mid-sync, a timeout, a 5xx) and ends a failure with one line.
#
# Every failure is retried, whatever it says: a registry's own words rarely tell a passing
# fault from a lasting one (apt says "Unable to locate package" both for a name that does
# not exist and for lists that failed to download), and a failure that the project caused
# only costs the back-off before it is reported.

# The attempts in all, and the seconds waited before each attempt after the first (the
# last value repeats). About a minute and a half at most, in a run that takes half an
# hour: long enough for a mirror's push or a registry's blip to pass.
registry_attempts=${REGISTRY_ATTEMPTS:-4}
read -r -a registry_backoff <<<"${REGISTRY_BACKOFF:-10 30 60}"
# Where each step's output goes (absolute: a step may run in another directory).
registry_logs=$PWD/target/registry-logs

# from_registry STEP REGISTRY COMMAND…: runs COMMAND, its output (the last attempt's) kept
# in a log of $registry_logs named for STEP. A failed attempt is announced in one
# line and tried again after a back-off, at most registry_attempts times in all; then
# from_registry prints one line, naming STEP, REGISTRY, the first error the command printed
# and the log, and returns 1 (under set -e, the calling script stops there).
from_registry() {
    local step=$1 registry=$2 attempt=1 delay log reason
    shift 2
    mkdir -p "$registry_logs"
    # Named for the step: its first words, and a checksum of it all (a file name has at
    # most 255 bytes; a step can name a dozen packages).
    log=$registry_logs/$(tr -cs 'A-Za-z0-9.' '-' <<<"$step" | cut -c1-60 | sed 's/-$//')-$(cksum <<<"$step" | cut -d' ' -f1).log
    while true; do
        if "$@" >"$log" 2>&1; then
            return 0
        fi
        reason=$(registry_error "$log")
        if ((attempt >= registry_attempts)); then
            echo "$step: failed against $registry after $attempt attempts: $reason (all it said: $log)" >&2
            return 1
        fi
        delay=${registry_backoff[attempt - 1]:-${registry_backoff[-1]}}
        echo "$step: $registry failed ($reason); trying again in ${delay} s (attempt $((attempt + 1)) of $registry_attempts)" >&2
        sleep "$delay"
        attempt=$((attempt + 1))
    done
}

# registry_error LOG: the line of LOG that best says what failed: the first error line of
# apt ("E: …"), pip ("ERROR: …"), npm ("npm error …") or cargo ("error: …"), else the last
# line; at most 300 characters.
registry_error() {
    local line
    line=$(grep -m1 -E '^(E: |ERROR: |npm (ERR!|error) |error: |error\[|Err:)' "$1" ||
        grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
    line=${line:-(it printed nothing)}
    echo "${line:0:300}"
}
