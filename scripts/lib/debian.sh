# Sourced by scripts that install Debian packages: from the machine's own suite (apt), or
# single packages from a newer suite, unpacked under target/ without touching the system.

# as_root COMMAND…: runs COMMAND as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE…: installs Debian packages from the machine's own suites, quietly.
apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The machine's mirror, read from its own apt sources, so that the newer suites come from
# the same place (deb822 "URIs:" or one-line "deb URL suite").
debian_mirror() {
    local mirror
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v security | head -n 1) || true
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1) || true
    echo "${mirror:-http://deb.debian.org/debian}"
}

# suite_apt DIR SUITE…: makes DIR a private apt state (sources, lists, cache) naming SUITE…
# on the machine's mirror, and refreshes its lists when they are over a day old. Sets
# suite_apt_options for apt-get and apt-cache. The system's own apt state is not touched:
# nothing can be installed from it by accident, only downloaded.
suite_apt() {
    local dir=$1 suite
    shift
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/sources.list.new"
    for suite in "$@"; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $suite main" \
            >>"$dir/sources.list.new"
    done
    suite_apt_options=(-o "Dir::Etc::SourceList=$PWD/$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$PWD/$dir/lists" -o "Dir::Cache=$PWD/$dir/cache"
        -o Dir::State::Status=/dev/null -o APT::Sandbox::User=root)
    if ! cmp -s "$dir/sources.list.new" "$dir/sources.list" ||
        [ -z "$(find "$dir/lists" -maxdepth 1 -name '*Packages*' -mtime -1)" ]; then
        mv "$dir/sources.list.new" "$dir/sources.list"
        [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || apt_install debian-archive-keyring
        apt-get "${suite_apt_options[@]}" update -qq
    fi
    rm -f "$dir/sources.list.new"
}

# suite_newest PATTERN: the newest package name matching the extended regular expression
# PATTERN (a version in its name, as golang-1.27-go) in the suites of the last suite_apt.
suite_newest() {
    apt-cache "${suite_apt_options[@]}" pkgnames | grep -E "^($1)\$" | sort -V | tail -n 1
}

# suite_version PACKAGE: the newest version of PACKAGE in the suites of the last suite_apt.
suite_version() {
    apt-cache "${suite_apt_options[@]}" madison "$1" | awk '{print $3}' | sort -V | tail -n 1
}

# suite_unpack ROOT PACKAGE…: downloads the newest version of each PACKAGE from the suites
# of the last suite_apt and unpacks it into ROOT (dpkg-deb -x: no scripts run, nothing
# registered with the system's dpkg). Dependencies are not followed: name what is needed.
suite_unpack() {
    local root=$1 package debs=$1.debs
    shift
    mkdir -p "$root" "$debs"
    for package in "$@"; do
        (cd "$debs" && apt-get "${suite_apt_options[@]}" download -qq "$package=$(suite_version "$package")")
    done
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
    rm -rf "$debs"
}
