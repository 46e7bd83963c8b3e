# Sourced by scripts that install Debian packages: from the machine's own suite (apt), or
# single packages from a newer suite, unpacked under target/ without touching the system.
# Every fetch goes through from_registry (scripts/lib/registry.sh): retried, and reported
# in one line.

. scripts/lib/registry.sh

# as_root COMMAND…: runs COMMAND as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The machine's mirror, read from its own apt sources, so that the newer suites come from
# the same place (deb822 "URIs:" or one-line "deb URL suite"). DEBIAN_MIRROR overrides it.
debian_mirror() {
    local mirror=${DEBIAN_MIRROR:-}
    [ -n "$mirror" ] || mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v security | head -n 1) || true
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1) || true
    echo "${mirror:-http://deb.debian.org/debian}"
}

# apt_update_options: prints, one per line, the options that make an apt-get update fetch
# the package lists and nothing else, whatever the machine's apt configuration adds: every
# index target but Packages (apt-file's Contents, appstream's DEP-11, translations,
# sources) is turned off by name, as `apt-config dump` lists them under the same
# configuration. The project reads only package lists; each other index is megabytes more
# to fetch, and one more file that a mirror in mid-sync can fail the whole update on (a
# 38 MB Contents file did, in CI). Every apt-get update the project runs uses them.
apt_update_options() {
    local target
    printf '%s\n' -o Acquire::Languages=none
    apt-config dump | sed -n 's/^Acquire::IndexTargets::\(deb\|deb-src\)::\([^:" ]*\) .*/\1::\2/p' |
        sort -u | while read -r target; do
        [ "$target" = deb::Packages ] || printf '%s\n' -o "Acquire::IndexTargets::$target::DefaultEnabled=false"
    done
}

# apt_install PACKAGE…: installs Debian packages from the machine's own suites, quietly.
# One attempt is an update (the package lists alone, and the machine's other indexes left
# where they are: no list clean-up) and the install; a failed attempt is retried whole
# (from_registry), so a list that failed to download is fetched again. A source of the
# machine's that fails for good (a third-party one, say) is apt's warning, as ever, not a
# failure of ours.
apt_install() {
    from_registry "apt-get install $*" "the machine's apt sources ($(debian_mirror))" \
        apt_install_once "$@"
}

# apt_install_once PACKAGE…: one attempt of apt_install.
apt_install_once() {
    local options=()
    mapfile -t options < <(apt_update_options)
    as_root apt-get "${options[@]}" -o APT::Get::List-Cleanup=false update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@"
}

# suite_apt DIR SUITE…: makes DIR a private apt state (sources, lists, cache) naming SUITE…
# on the machine's mirror (DEBIAN_MIRROR, signed by DEBIAN_KEYRING: Debian's archive keys
# unless set), and refreshes its package lists when they are over a day old or name other
# suites. Sets suite_apt_options for apt-get and apt-cache. The system's own apt state is
# not touched: nothing can be installed from it by accident, only downloaded.
suite_apt() {
    local dir suite keyring=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
    local options=()
    dir=$(realpath -m "$1")
    shift
    suite_apt_registry="Debian's mirror $(debian_mirror) ($*)"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    : >"$dir/sources.list.new"
    for suite in "$@"; do
        echo "deb [signed-by=$keyring] $(debian_mirror) $suite main" >>"$dir/sources.list.new"
    done
    suite_apt_options=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
        -o Dir::State::Status=/dev/null -o APT::Sandbox::User=root)
    # The stamp is written after a whole update: apt dates list files by the mirror's
    # Last-Modified, which says nothing of when they were fetched.
    if ! cmp -s "$dir/sources.list.new" "$dir/sources.list" ||
        [ -z "$(find "$dir" -maxdepth 1 -name updated -mtime -1)" ]; then
        mv "$dir/sources.list.new" "$dir/sources.list"
        rm -f "$dir/updated"
        [ -f "$keyring" ] || apt_install debian-archive-keyring || return 1
        # Any list that fails to download fails the update (by default apt warns, exits 0
        # and keeps no list, and the failure shows up later as a package it cannot find):
        # these suites are Debian's own, and from_registry tries again.
        mapfile -t options < <(apt_update_options)
        from_registry "apt-get update ($*)" "$suite_apt_registry" \
            apt-get "${options[@]}" -o APT::Update::Error-Mode=any "${suite_apt_options[@]}" \
            update -qq || return 1
        touch "$dir/updated"
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
    local root=$1 package debs=$1.debs wanted=()
    shift
    mkdir -p "$root" "$debs"
    for package in "$@"; do
        wanted+=("$package=$(suite_version "$package")")
    done
    (cd "$debs" && from_registry "apt-get download $*" "$suite_apt_registry" \
        apt-get "${suite_apt_options[@]}" download -qq "${wanted[@]}") || return 1
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$root" || return 1
    done
    rm -rf "$debs"
}
