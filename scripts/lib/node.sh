# Sourced by scripts that need npm packages (after scripts/lib/debian.sh).

# npm_packages FROM TO: makes sure TO/node_modules holds exactly what FROM's package.json and
# package-lock.json pin (npm ci, no install scripts), again whenever the lock file changes.
# TO/installed.lock is the lock file of the last install that finished, so an install cut
# short is done again. Installs Node.js and npm with apt on a machine that lacks them.
npm_packages() {
    local from=$1 to=$2 packages
    command -v npm >/dev/null || apt_install nodejs npm || return 1
    if ! cmp -s "$from/package-lock.json" "$to/installed.lock" || [ ! -d "$to/node_modules" ]; then
        packages=$(sed -n 's/^    "\([^"]*\)": .*/\1/p' "$from/package.json" | paste -sd' ')
        echo "installing $packages into $to (npm)"
        mkdir -p "$to"
        rm -f "$to/installed.lock"
        cp "$from/package.json" "$from/package-lock.json" "$to/"
        (cd "$to" && from_registry "npm ci ($packages)" "npm ($(npm config get registry))" \
            npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || return 1
        cp "$from/package-lock.json" "$to/installed.lock"
    fi
}
