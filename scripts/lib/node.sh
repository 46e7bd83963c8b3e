# Sourced by scripts that need npm packages (after scripts/lib/debian.sh).

# npm_packages FROM TO: makes sure TO/node_modules holds exactly what FROM's package.json and
# package-lock.json pin (npm ci, no install scripts), again whenever the lock file changes.
# Installs Node.js and npm with apt on a machine that lacks them.
npm_packages() {
    local from=$1 to=$2
    command -v npm >/dev/null || apt_install nodejs npm
    if ! cmp -s "$from/package-lock.json" "$to/package-lock.json" || [ ! -d "$to/node_modules" ]; then
        echo "installing $(sed -n 's/^    "\([^"]*\)": .*/\1/p' "$from/package.json" | paste -sd' ') into $to (npm)"
        mkdir -p "$to"
        cp "$from/package.json" "$from/package-lock.json" "$to/"
        (cd "$to" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
}
