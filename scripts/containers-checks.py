#!/usr/bin/env python3
"""The end-to-end checks of scripts/containers, against the compose stack it started.

    containers-checks.py --docker /usr/bin/docker --state DIR -- -f compose.yaml -f override.yaml

Each check prints one ok/FAIL line; every response is asserted (status, every product in
order, discounted or not, X-Discount-Status). In order:
  1. the stack: every service healthy, hardened as the Kubernetes manifests are, on
     networks in 198.18.0.0/15 only;
  2. no customer, customer 1 and customer 2 through the published port: the README's
     bodies; the storefront's page;
  3. Prometheus: both targets up, every rule group of deploy/prometheus/rules.yml loaded;
  4. the `load` profile (Locust) at a steady rate: after two minutes of healthy traffic
     no alert is pending or firing;
  5. the fault flags (deploy/flags, rewritten by scripts/flags in the stack's copy of the
     tree): Locust's flood with a slow discount makes the catalog shed (503 with
     Retry-After), and off again, complete answers;
  6. discount killed (docker kill) under that load: every answer 200 at full price within
     the call deadline, and the alert for a discount that is gone fires; started again:
     discounts back within 3 s, and the alert resolves;
  7. three discount replicas behind the one name: each gets calls; one killed under steady
     load: from 2 s after the kill every answer discounted, none over the deadline bound;
     one made slow by a fault flag aimed at it: every answer complete, by hedging;
  8. the catalog restarted under load: nothing but complete 200s or refused connections,
     and its stop takes no more than the shutdown bound (exit 0, no SIGKILL);
  9. the keys volume survives down and up (the same certificates are served); a
     certificate near its end (inside a 100-day renewal window) is renewed by the keys
     service and served by the running discount without a restart, with a new serial.
Uses only the Python standard library.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from answers import (BOUND, DISCOUNTED, REPO, Load, alerts, failures, get,  # noqa: E402
                     passed, prometheus, readme_bodies, replica_calls, report, served_certificate,
                     until, verdict)

# --- The stack. ---------------------------------------------------------------------------


class Stack:
    def __init__(self, docker, files):
        self.docker = docker
        self.files = files

    def compose(self, *args, check=True):
        done = subprocess.run([self.docker, "compose", *self.files, *args],
                              capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def run(self, *args):
        return subprocess.run([self.docker, *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    def containers(self, service):
        ids = self.compose("ps", "-q", service).split()
        return ids

    def inspect(self, container):
        return json.loads(self.run("inspect", container))[0]

    def published(self, service, port, index=1):
        address = self.compose("port", "--index", str(index), service, str(port))
        host, _, port = address.rpartition(":")
        return host, int(port)


# --- The checks. -------------------------------------------------------------------------


def check_stack(stack):
    problems = []
    for service in ["discount", "catalog", "prometheus"]:
        for container in stack.containers(service):
            info = stack.inspect(container)
            state, host = info["State"], info["HostConfig"]
            health = state.get("Health", {}).get("Status", "none")
            if state["Status"] != "running" or health not in ("healthy", "none"):
                problems.append(f"{service}: {state['Status']}, {health}")
            user = info["Config"]["User"] or "root"
            if user.split(":")[0] in ("", "0", "root"):
                problems.append(f"{service} runs as root")
            if not host.get("ReadonlyRootfs"):
                problems.append(f"{service}: root filesystem writable")
            if "ALL" not in (host.get("CapDrop") or []):
                problems.append(f"{service}: capabilities not dropped")
            if not any("no-new-privileges" in o for o in host.get("SecurityOpt") or []):
                problems.append(f"{service}: no no-new-privileges")
            for name, network in info["NetworkSettings"]["Networks"].items():
                if not network["IPAddress"].startswith(("198.18.", "198.19.")):
                    problems.append(f"{service} on {name}: {network['IPAddress']}")
    report(not problems, "the stack up --wait: healthy, non-root, read-only, no capabilities, "
           "no-new-privileges, addresses in 198.18.0.0/15", "; ".join(problems))


def check_bodies(catalog):
    problems = readme_bodies(catalog)
    page = get(catalog, "/shop")
    if page[0] != 200 or "<script type=\"module\" src=\"/shop/shop.js\">" not in page[2]:
        problems.append(f"/shop: {page[0]}")
    report(not problems, "no customer, customer 1, customer 2 through the published port: the "
           "README's bodies; the storefront at /shop", "; ".join(problems))


def check_prometheus(prom):
    with open(os.path.join(REPO, "deploy/prometheus/rules.yml")) as f:
        groups = set(re.findall(r"^  - name: (\S+)", f.read(), re.M))
    try:
        until("both targets up", lambda: sorted(
            (t["labels"]["job"], t["health"]) for t in prometheus(prom, "/api/v1/targets")["activeTargets"]
        ) == [("catalog", "up"), ("discount", "up")], 60)
        loaded = {g["name"] for g in prometheus(prom, "/api/v1/rules")["groups"]}
        report(loaded == groups, f"Prometheus: both targets up, all {len(groups)} rule groups loaded",
               f"loaded {sorted(loaded)}, expected {sorted(groups)}")
    except TimeoutError as e:
        report(False, "Prometheus: both targets up", str(e))


def check_healthy_traffic(stack, prom, seconds):
    stack.compose("--profile", "load", "up", "-d", "load")
    started = time.monotonic()
    # Traffic must be seen: the catalog's counter grows in Prometheus.
    seen, active = 0.0, []
    while time.monotonic() - started < seconds:
        time.sleep(15)
        result = prometheus(prom, "/api/v1/query?query=sum(catalog_http_requests_total%7Broute%3D%22%2Fproducts%22%7D)")
        seen = float(result["result"][0]["value"][1]) if result["result"] else 0.0
        active = alerts(prom)
        if active:
            break
    report(not active and seen > 10 * seconds,
           f"healthy steady traffic (Locust, {seen:.0f} requests in {time.monotonic() - started:.0f} s): "
           "no alert pending or firing", f"alerts {active}, {seen:.0f} requests seen")


def set_flags(flags_file, *args):
    """scripts/flags ARGS on the stack's flag file, as a presenter would."""
    subprocess.run([sys.executable, os.path.join(REPO, "scripts/flags"), *args], check=True,
                   capture_output=True, env={**os.environ, "FLAGS_FILE": flags_file})


def counter(catalog, name):
    """A counter of the catalog's /metrics, its series summed (0 before any appears)."""
    text = get(catalog, "/metrics")[2]
    return sum(float(n) for n in re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def check_flood(stack, catalog, flags_file):
    """loadGeneratorFlood with discountDelayMs slow: the catalog sheds, 503 with Retry-After;
    both off: complete answers again."""
    stack.compose("--profile", "load", "up", "-d", "load")
    before = counter(catalog, "catalog_requests_shed_total")
    set_flags(flags_file, "set", "discountDelayMs", "slow")
    set_flags(flags_file, "set", "loadGeneratorFlood", "flood")
    started = time.monotonic()
    try:
        try:
            def refused():
                answer = get(catalog, user=1)
                return answer if answer[0] == 503 and answer[1].get("retry-after") else None

            answer = until("a 503 with Retry-After", refused, 60)
            report(counter(catalog, "catalog_requests_shed_total") > before,
                   f"fault flags: Locust's flood with a slow discount: shed after "
                   f"{time.monotonic() - started:.1f} s (503, Retry-After: {answer[1]['retry-after']})",
                   "catalog_requests_shed_total did not move")
        except TimeoutError as e:
            report(False, "fault flags: Locust's flood with a slow discount makes the catalog shed", str(e))
    finally:
        set_flags(flags_file, "off")
    stopped = time.monotonic()
    try:
        until("ten complete answers in a row", lambda: all(
            not verdict(a, True) and a[1].get("x-discount-status") == "complete"
            for a in [get(catalog, user=1) for _ in range(10)]), 30)
        report(True, f"fault flags off: complete answers again after {time.monotonic() - stopped:.1f} s")
    except TimeoutError as e:
        report(False, "fault flags off: complete answers again", str(e))


def check_discount_killed(stack, catalog, prom):
    """discount killed under load: full prices within the deadline, its alert fires; started
    again: discounts back within 3 s, and the alert resolves."""
    (container,) = stack.containers("discount")
    stack.run("kill", container)
    killed = time.monotonic()
    problems = []
    for _ in range(20):
        answer = get(catalog, user=1)
        wrong = verdict(answer, discounted=False)
        if wrong or answer[1].get("x-discount-status") != "unavailable" or answer[3] > BOUND:
            problems.append(f"{wrong or answer[1].get('x-discount-status')} in {answer[3]:.2f} s")
    report(not problems, "discount killed: every answer 200 with full prices, unavailable, within the "
           "deadline", "; ".join(problems[:3]))
    gone = {"DiscountScrapeDown", "DiscountReplicaDown", "CatalogDiscountBreakerOpen"}
    try:
        fired = until("an alert for the discount that is gone", lambda: sorted(
            name for name, state in alerts(prom) if name in gone and state == "firing"), 240)
        report(True, f"discount killed: {', '.join(fired)} fired after {time.monotonic() - killed:.0f} s")
    except TimeoutError as e:
        report(False, "discount killed: an alert fires", f"{e}; alerts {alerts(prom)}")
    stack.run("start", container)
    started = time.monotonic()
    try:
        until("discounts back", lambda: get(catalog, user=1, timeout=2)[2] == DISCOUNTED, 3)
        report(True, f"discount started again: discounts back in {time.monotonic() - started:.1f} s")
    except TimeoutError as e:
        report(False, "discount started again: discounts back within 3 s", str(e))
    try:
        until("the alert resolved", lambda: not any(
            name in gone and state == "firing" for name, state in alerts(prom)), 120)
        report(True, f"discount back: the alert resolved after {time.monotonic() - started:.0f} s")
    except TimeoutError as e:
        report(False, "discount back: the alert resolves", f"{e}; alerts {alerts(prom)}")
    stack.compose("--profile", "load", "stop", "load")


def check_replicas(stack, catalog):
    stack.compose("up", "-d", "--wait", "--scale", "discount=3", "--no-recreate", "discount")
    until("three replicas accepting calls",
          lambda: "3 resolved, 3 accepting calls" in get(catalog, "/readyz")[2], 30)
    before = replica_calls(catalog)
    load = Load(catalog)
    time.sleep(3)
    load.finish()
    after = replica_calls(catalog)
    spread = {r: after.get(r, 0) - before.get(r, 0) for r in after}
    report(len(spread) == 3 and all(n > 0 for n in spread.values()),
           f"three discount replicas behind one name, each called: {sorted(int(n) for n in spread.values())}",
           f"calls by replica {spread}")

    victim = stack.containers("discount")[0]
    load = Load(catalog)
    time.sleep(1)
    stack.run("kill", victim)
    killed = time.monotonic()
    time.sleep(5)
    samples = load.finish()
    late = [(t - killed, a) for t, a in samples if t >= killed + 2]
    problems = [f"{t:.1f} s after: {verdict(a, True) or a[1].get('x-discount-status')}"
                for t, a in late if verdict(a, True) or a[1].get("x-discount-status") != "complete"]
    slow = [f"{a[3]:.2f} s" for t, a in samples if t >= killed and a[3] > BOUND]
    report(late and not problems and not slow,
           f"one of three replicas killed under load: from 2 s after, all {len(late)} answers discounted, "
           f"none over {BOUND:.1f} s", "; ".join((problems + slow)[:5]))
    stack.run("start", victim)


def check_slow_replica(stack, catalog, flags_file):
    """discountDelayMs slow aimed at one replica of three: every answer complete, the
    hedges to the other replicas winning."""
    stack.compose("up", "-d", "--wait", "--scale", "discount=3", "--no-recreate", "discount")
    until("three replicas accepting calls",
          lambda: "3 resolved, 3 accepting calls" in get(catalog, "/readyz")[2], 30)
    slow = stack.inspect(stack.containers("discount")[0])["Config"]["Hostname"]
    won = "catalog_discount_hedges_won_total"
    before = counter(catalog, won)
    set_flags(flags_file, "set", "discountDelayMs", "slow", "--replica", slow)
    try:
        def hedged():
            get(catalog, user=1)  # traffic, for the flag to act on
            return counter(catalog, won) > before

        until("hedges winning", hedged, 30)
        load = Load(catalog)
        time.sleep(3)
        samples = load.finish()
    finally:
        set_flags(flags_file, "off")
    problems = [f"{verdict(a, True) or a[1].get('x-discount-status')} in {a[3]:.2f} s"
                for _, a in samples if verdict(a, True) or a[1].get("x-discount-status") != "complete"
                or a[3] > BOUND]
    report(samples and not problems,
           f"fault flag: one replica of three slow ({slow}): all {len(samples)} answers complete, "
           f"{counter(catalog, won) - before:.0f} hedges won", "; ".join(problems[:5]))


def check_catalog_restart(stack, catalog):
    (container,) = stack.containers("catalog")
    load = Load(catalog)
    time.sleep(1)
    started = time.monotonic()
    stack.compose("stop", "catalog")
    stopped = time.monotonic() - started
    state = stack.inspect(container)["State"]
    stack.compose("start", "catalog")
    until("the catalog healthy again", lambda: stack.inspect(container)["State"].get("Health", {}).get(
        "Status") == "healthy", 60)
    samples = load.finish()
    # Its published port is picked again at start.
    back = get(stack.published("catalog", 11080), user=1)
    if verdict(back, True):
        samples.append((time.monotonic(), back))
    problems = [f"{verdict(a, True) or a[1].get('x-discount-status')}" for _, a in samples
                if a[0] != "refused" and (verdict(a, True) or a[1].get("x-discount-status") != "complete")]
    refused = sum(1 for _, a in samples if a[0] == "refused")
    report(not problems and state["ExitCode"] == 0 and not state["OOMKilled"] and stopped < 15,
           f"the catalog restarted under load: {len(samples) - refused} complete 200s and {refused} refused, "
           f"nothing else; stopped in {stopped:.1f} s with exit code 0",
           f"exit code {state['ExitCode']}, stop {stopped:.1f} s, {problems[:3]}")


def check_keys(stack):
    discount = stack.published("discount", 11443)
    before = served_certificate(discount)
    stack.compose("down")
    stack.compose("up", "-d", "--wait")
    discount = stack.published("discount", 11443)
    after = served_certificate(discount)
    report(before == after, "the keys volume survives down and up: the same certificate served",
           f"{before[1:]} then {after[1:]}")

    # A certificate inside the renewal window: the keys service, as `up` runs it, but with
    # a 100-day window (its 90-day certificate is then near its end) and one-year leaves.
    (container,) = stack.containers("discount")
    started_at = stack.inspect(container)["State"]["StartedAt"]
    stack.compose("run", "--rm", "-e", "CERT_RENEW_BEFORE_DAYS=100", "-e", "CERT_VALIDITY_DAYS=365", "keys")
    try:
        renewed = until("the renewed certificate served", lambda: (
            lambda c: c if c[0] != after[0] else None)(served_certificate(discount)), 30)
        same_process = stack.inspect(container)["State"]["StartedAt"] == started_at
        report(same_process and renewed[2] != after[2],
               f"a certificate near its end (until {after[1]}) renewed by the keys service (until "
               f"{renewed[1]}, a new serial) and served without restarting discount",
               f"restarted: {not same_process}, serials {after[2]} {renewed[2]}")
    except TimeoutError as e:
        report(False, "a renewed certificate served without restarting discount", str(e))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docker", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--healthy-seconds", type=int, default=120)
    parser.add_argument("--only", nargs="*", help="run only these checks (names below)")
    parser.add_argument("files", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    files = args.files[1:] if args.files[:1] == ["--"] else args.files
    stack = Stack(args.docker, files)
    catalog = stack.published("catalog", 11080)
    prom = stack.published("prometheus", 9090)
    # The stack runs from scripts/containers' copy of the tree: its flag file, not the repo's.
    flags_file = os.path.join(args.state, "tree", "deploy", "flags", "demo.flagd.json")

    checks = {
        "stack": lambda: check_stack(stack),
        "bodies": lambda: check_bodies(catalog),
        "prometheus": lambda: check_prometheus(prom),
        "healthy": lambda: check_healthy_traffic(stack, prom, args.healthy_seconds),
        "flood": lambda: check_flood(stack, catalog, flags_file),
        "killed": lambda: check_discount_killed(stack, catalog, prom),
        "replicas": lambda: check_replicas(stack, catalog),
        "slow-replica": lambda: check_slow_replica(stack, catalog, flags_file),
        "restart": lambda: check_catalog_restart(stack, catalog),
        "keys": lambda: check_keys(stack),
    }
    for name, check in checks.items():
        if not args.only or name in args.only:
            check()
    print(f"containers: {len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
