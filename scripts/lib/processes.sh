# Sourced by scripts that start the services (or other servers) in the background, learn
# their OS-picked addresses from their logs, and stop them on exit. Needs $work: a
# directory for the logs.

pids=()
declare -A pid_of=()

# start_logged NAME COMMAND…: runs COMMAND in the background, stderr and stdout to
# $work/NAME.log, and remembers its pid for stop_all.
start_logged() {
    local name=$1
    shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    pid_of[$name]=$!
}

# stop_one NAME: SIGTERM to the process start_logged started as NAME, then waits for it.
stop_one() {
    kill -TERM "${pid_of[$1]}" 2>/dev/null || true
    wait "${pid_of[$1]}" 2>/dev/null || true
}

# address_in NAME PATTERN: waits (at most 30 s) for a line of $work/NAME.log that matches
# PATTERN and prints its address=… value.
address_in() {
    local line
    for _ in $(seq 150); do
        if line=$(grep -m1 -- "$2" "$work/$1.log" 2>/dev/null); then
            sed -n 's/.*address=\([^ ]*\).*/\1/p' <<<"$line"
            return
        fi
        sleep 0.2
    done
    echo "no '$2' in $work/$1.log:" >&2
    cat "$work/$1.log" >&2
    exit 1
}

# stop_all: SIGTERM to everything start_logged started, then waits for it.
stop_all() {
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    pids=()
declare -A pid_of=()
}
