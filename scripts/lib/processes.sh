# Sourced by scripts that start the services (or other servers) in the background, learn
# their addresses from their logs, and stop them on exit: the one way the project's scripts
# start and stop processes. Needs $work: a directory for the logs. Every wait is bounded,
# and only the processes started here are ever signalled, by PID.

pids=()
declare -A pid_of=()

# start_logged NAME COMMAND…: runs COMMAND in the background, stderr and stdout to
# $work/NAME.log, and remembers its pid (pid_of[NAME]) for stop_one and stop_all.
start_logged() {
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    pid_of[$name]=$!
}

# stop_one NAME [SECONDS]: SIGTERM to the process start_logged started as NAME, then waits
# for it, at most SECONDS (20 by default), then SIGKILL.
stop_one() {
    local pid=${pid_of[$1]:-} patience=${2:-20}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((patience * 5))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# address_in NAME PATTERN [SECONDS]: waits (at most SECONDS, 30 by default) for a line of
# $work/NAME.log that matches PATTERN, and prints its address: address=… in a text log
# line, "address":"…" in a JSON one. If the process ends first, or the time is up, prints
# its log and exits 1.
address_in() {
    local name=$1 pattern=$2 line
    local tries=$((${3:-30} * 5))
    for _ in $(seq "$tries"); do
        if line=$(grep -m1 -- "$pattern" "$work/$name.log" 2>/dev/null); then
            sed -n -e 's/.*address=\([^ ]*\).*/\1/p' -e 's/.*"address":"\([^"]*\)".*/\1/p' <<<"$line"
            return
        fi
        if [ -n "${pid_of[$name]:-}" ] && ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
            echo "$name ended before logging '$pattern'; its log:" >&2
            cat "$work/$name.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "no '$pattern' in $work/$name.log within ${3:-30} s:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

# stop_all: SIGTERM to everything start_logged started, then waits for it (at most 20 s
# each, then SIGKILL).
stop_all() {
    local name
    for name in "${!pid_of[@]}"; do
        kill -TERM "${pid_of[$name]}" 2>/dev/null || true
    done
    for name in "${!pid_of[@]}"; do
        stop_one "$name"
    done
    pids=()
    pid_of=()
}
