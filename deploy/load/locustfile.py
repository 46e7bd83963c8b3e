"""Steady traffic for the compose stack's `load` profile: what a shop's visitors would send.

Each simulated visitor asks for the products five times a second (constant throughput, not
as fast as possible: a steady rate is what the alerts are judged on): three times in four
as customer 1, whose prices go through discount, and otherwise without a customer. A
response counts as a failure when it is not 200 or not the whole catalog.

The fault flag `loadGeneratorFlood` (docs/failure-scenarios.md), read through OpenFeature
with flagd's provider from the flag file that FLAGD_OFFLINE_FLAG_SOURCE_PATH names (compose
mounts deploy/flags), turns each customer-1 visit into that many requests at once, besides
the steady one: reported apart, as "/products flood". Without the file, or without the
OpenFeature packages (requirements.txt), there is no flood.
"""

import logging
import os

import gevent.pool
from locust import HttpUser, constant_throughput, events, task
from requests.adapters import HTTPAdapter

PRODUCTS = 3
FLOOD_FLAG = "loadGeneratorFlood"
# A bound on the requests one visit sends at once, whatever the flag says.
MAX_FLOOD = 1000

flags = None


@events.init.add_listener
def follow_flags(**_):
    """The OpenFeature client, when a flag file is given and the packages are there."""
    global flags
    path = os.environ.get("FLAGD_OFFLINE_FLAG_SOURCE_PATH")
    if not path:
        return
    try:
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType
    except ImportError as e:
        logging.warning("fault flags off: %s (pip install -r requirements.txt)", e)
        return
    api.set_provider(FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=path))
    flags = api.get_client()
    logging.info("fault flags: following %s", path)


def flood_size():
    """How many extra requests a visit sends now: 0 unless the flag says otherwise."""
    if flags is None:
        return 0
    return max(0, min(MAX_FLOOD, flags.get_integer_value(FLOOD_FLAG, 0)))


class Visitor(HttpUser):
    wait_time = constant_throughput(5)

    def on_start(self):
        # A connection for each request of a flood: the default pool keeps 10, and warns
        # for every connection over that.
        self.client.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=MAX_FLOOD + 1))

    def products(self, name, headers):
        with self.client.get("/products", headers=headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
            elif len(r.json()) != PRODUCTS:
                r.failure(f"{len(r.json())} products")

    @task(3)
    def customer_1(self):
        extra = flood_size()
        if extra:
            pool = gevent.pool.Pool(extra)
            for _ in range(extra):
                pool.spawn(self.products, "/products flood", {"X-USER-ID": "1"})
            pool.join()
        self.products("/products customer 1", {"X-USER-ID": "1"})

    @task(1)
    def no_customer(self):
        self.products("/products", {})
