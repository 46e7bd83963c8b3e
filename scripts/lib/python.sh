# Sourced by scripts that need Python tools from PyPI.

. scripts/lib/debian.sh

# python_venv DIR CHECK PACKAGE…: makes sure DIR is a virtual environment in which the
# Python statement CHECK runs, installing PACKAGE… (pip arguments) if it does not. Installs
# Python 3 and venv with apt on a machine that lacks them.
python_venv() {
    local dir=$1 check=$2
    shift 2
    if "$dir/bin/python" -c "$check" 2>/dev/null; then
        return
    fi
    echo "installing $* into $dir"
    command -v python3 >/dev/null || apt_install python3 python3-venv || return 1
    python3 -m venv "$dir" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$dir"; } || return 1
    # pip retries a connection itself (5 times); from_registry retries what pip gave up on.
    from_registry "pip install $*" "PyPI" \
        "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
}
