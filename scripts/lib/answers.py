"""What the container and swarm checks share (scripts/containers-checks.py,
scripts/swarm-checks.py): one ok/FAIL line per check, HTTP by hand with every answer kept
whole, the bodies the catalog must serve, a steady checking load, and bounded waits.
Uses only the Python standard library."""

import http.client
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE = 0.3  # the catalog's default discount deadline, in seconds
BOUND = DEADLINE + 0.7  # an answer's bound: the deadline, with slack for a busy machine
failures = []
passed = []


def report(ok, what, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'}  {what}{'' if ok else ': ' + detail}", flush=True)
    (passed if ok else failures).append(what)


# --- HTTP and TLS, by hand: every answer kept whole. ----------------------------------------


def get(address, path="/products", user=None, timeout=5.0):
    """One GET on a new connection: (status, headers, body, seconds), or ("refused", …)
    when the connection is refused or closed before any byte of an answer (how Docker's
    port publishing says that nothing listens behind it)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", path, headers={"X-USER-ID": str(user)} if user else {})
        response = connection.getresponse()
        body = response.read().decode()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, body, time.monotonic() - started
    except (ConnectionRefusedError, http.client.RemoteDisconnected, ConnectionResetError) as e:
        return "refused", {}, repr(e), time.monotonic() - started
    except (socket.timeout, OSError) as e:
        return "error", {}, repr(e), time.monotonic() - started
    finally:
        connection.close()


def expected_bodies():
    """The catalog's bodies from its data and the discount rule, checked against the
    README's customer-1 body."""
    with open(os.path.join(REPO, "catalog/data/default.json")) as f:
        products = json.load(f)["products"]

    def body(discounted):
        out = []
        for p in products:
            item = dict(p)
            if discounted:
                item["discount_value"] = {"pct": 0.1, "value_in_cents": p["price_in_cents"] * 9 // 10}
            out.append(item)
        return json.dumps(out, separators=(",", ":"))

    full, discounted = body(False), body(True)
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    if discounted not in readme:
        raise RuntimeError("the README's customer-1 body is not the one computed from the data")
    return full, discounted


FULL, DISCOUNTED = expected_bodies()


def verdict(answer, discounted):
    """What is wrong with one /products answer, or None."""
    status, headers, body, _ = answer
    if status != 200:
        return f"status {status} {body[:120]}"
    want = DISCOUNTED if discounted else FULL
    if body != want:
        return f"body {body[:200]}"
    return None


def readme_bodies(address):
    """What is wrong with the catalog at `address`'s answers for no customer, customer 1
    and customer 2 (the README's bodies, and X-Discount-Status): a list, empty if nothing."""
    problems = []
    for user, discounted, status in [(None, False, "skipped"), (1, True, "complete"), (2, False, "complete")]:
        answer = get(address, user=user)
        wrong = verdict(answer, discounted)
        if wrong or answer[1].get("x-discount-status") != status:
            problems.append(f"customer {user}: {wrong or answer[1].get('x-discount-status')}")
    return problems


class Load:
    """Steady requests for customer 1 from `workers` threads, each answer kept with the time
    it started (a checker, not a load generator: one request at a time per thread)."""

    def __init__(self, address, workers=2, pause=0.02):
        self.address, self.samples, self.stop = address, [], threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(pause,)) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def loop(self, pause):
        while not self.stop.is_set():
            started = time.monotonic()
            answer = get(self.address, user=1, timeout=5)
            self.samples.append((started, answer))
            time.sleep(pause)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.samples


def until(what, condition, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds} s")
        time.sleep(0.25)


def served_certificate(address):
    """The certificate discount serves now (PEM), and its notAfter and serial."""
    pem = ssl.get_server_certificate(address)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(pem)
        f.flush()
        decoded = ssl._ssl._test_decode_cert(f.name)  # parses without trusting it
    return pem, decoded["notAfter"], decoded["serialNumber"]


def prometheus(address, path):
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=5) as r:
        return json.load(r)["data"]


def alerts(address):
    return [(a["labels"]["alertname"], a["state"]) for a in prometheus(address, "/api/v1/alerts")["alerts"]]



def replica_calls(catalog):
    text = get(catalog, "/metrics")[2]
    calls = {}
    for replica, count in re.findall(
            r'^catalog_discount_replica_calls_total\{replica="([^"]+)",result="ok"\} (\S+)', text, re.M):
        calls[replica] = float(count)
    return calls
