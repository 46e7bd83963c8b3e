#!/usr/bin/env python3
"""A Debian mirror in miniature, for scripts/check-registry: one suite, one package, and the
indexes a real mirror also carries and the project never reads, in the state that failed CI
once (a Contents file mid-sync: listed in Release with one size, served with another).

    fake-debian-mirror.py make ROOT SUITE   # writes the mirror into ROOT, InRelease signed
                                            # with a throwaway key: ROOT/key.gpg
    fake-debian-mirror.py serve ROOT        # serves ROOT on 127.0.0.1, on a port the OS
                                            # picks ("listening address=…" on stdout)

While serving, every path asked for is appended to ROOT/requests, and ROOT/faults, when it
exists, holds "COUNT TEXT": the next COUNT requests whose path contains TEXT are answered
503, as a mirror or proxy under load would.
"""

import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from email.utils import formatdate

PACKAGE, VERSION = "check-hello", "1.0-1"


def write(root, path, data):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)


def make(root, suite):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    dist = f"dists/{suite}"

    # The one package: a real .deb, which apt-get download fetches and dpkg-deb unpacks.
    with tempfile.TemporaryDirectory() as build:
        os.makedirs(f"{build}/DEBIAN")
        os.makedirs(f"{build}/usr/share/{PACKAGE}")
        with open(f"{build}/usr/share/{PACKAGE}/hello", "w") as f:
            f.write("hello\n")
        with open(f"{build}/DEBIAN/control", "w") as f:
            f.write(f"Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: all\n"
                    "Maintainer: check <check@example.org>\nDescription: a test package\n")
        deb = f"pool/main/c/{PACKAGE}/{PACKAGE}_{VERSION}_all.deb"
        os.makedirs(os.path.dirname(os.path.join(root, deb)))
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", build,
                        os.path.join(root, deb)], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(root, deb), "rb") as f:
        deb_bytes = f.read()
    packages = (f"Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: all\n"
                f"Maintainer: check <check@example.org>\nFilename: {deb}\n"
                f"Size: {len(deb_bytes)}\nSHA256: {hashlib.sha256(deb_bytes).hexdigest()}\n"
                "Description: a test package\n\n").encode()

    # What Release lists: name -> (bytes listed, bytes served; None: not served at all).
    # As Debian's own, it lists each index uncompressed too, served or not.
    contents = b"usr/share/check-hello/hello  misc/check-hello\n"
    translation = b"Package: check-hello\nDescription-en: a test package\n\n"
    components = b"---\nFile: DEP-11\n"
    listed = {
        f"main/binary-{arch}/Packages": (packages, None),
        f"main/binary-{arch}/Packages.gz": (gzip.compress(packages),) * 2,
        f"main/Contents-{arch}": (contents + b"new", None),
        # Mid-sync: the new file is listed, the old one still served.
        f"main/Contents-{arch}.gz": (gzip.compress(contents + b"new"), gzip.compress(contents)),
        f"main/dep11/Components-{arch}.yml": (components, None),
        f"main/dep11/Components-{arch}.yml.gz": (gzip.compress(components),) * 2,
        "main/i18n/Translation-en": (translation, None),
        "main/i18n/Translation-en.gz": (gzip.compress(translation),) * 2,
    }
    lines = []
    for name, (listed_bytes, served) in listed.items():
        lines.append(f" {hashlib.sha256(listed_bytes).hexdigest()} {len(listed_bytes)} {name}")
        if served is not None:
            write(root, f"{dist}/{name}", served)
    release = (f"Origin: check\nLabel: check\nSuite: {suite}\nCodename: {suite}\n"
               f"Date: {formatdate(usegmt=True)}\nArchitectures: {arch}\nComponents: main\n"
               "SHA256:\n" + "\n".join(lines) + "\n")
    write(root, f"{dist}/Release", release.encode())

    # Signed by a key made for this mirror alone, and thrown away with it.
    home = os.path.join(root, ".gnupg")
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", home]
    subprocess.run(gpg + ["--passphrase", "", "--quick-gen-key", "check <check@example.org>",
                          "ed25519", "sign", "never"], check=True, capture_output=True)
    subprocess.run(gpg + ["--output", os.path.join(root, "key.gpg"), "--export"], check=True)
    subprocess.run(gpg + ["--output", os.path.join(root, dist, "InRelease"), "--clearsign",
                          os.path.join(root, dist, "Release")], check=True, capture_output=True)


def serve(root):
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=root, **kwargs)

        def faulted(self):
            """Whether this request is one of the faults asked for (and counts it)."""
            faults = os.path.join(root, "faults")
            with lock:
                if not os.path.exists(faults):
                    return False
                with open(faults) as f:
                    count, text = f.read().split(maxsplit=1)
                if int(count) <= 0 or text.strip() not in self.path:
                    return False
                with open(faults, "w") as f:
                    f.write(f"{int(count) - 1} {text}")
                return True

        def do_GET(self):
            with lock, open(os.path.join(root, "requests"), "a") as f:
                f.write(self.path + "\n")
            if self.faulted():
                self.send_error(503, "Service Unavailable (a fault asked for)")
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening address=127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(__doc__)
