"""Steady traffic for the compose stack's `load` profile: what a shop's visitors would send.

Each simulated visitor asks for the products five times a second (constant throughput, not
as fast as possible: a steady rate is what the alerts are judged on): three times in four
as customer 1, whose prices go through discount, and otherwise without a customer. A
response counts as a failure when it is not 200 or not the whole catalog.
"""

from locust import HttpUser, constant_throughput, task

PRODUCTS = 3


class Visitor(HttpUser):
    wait_time = constant_throughput(5)

    def products(self, name, headers):
        with self.client.get("/products", headers=headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
            elif len(r.json()) != PRODUCTS:
                r.failure(f"{len(r.json())} products")

    @task(3)
    def customer_1(self):
        self.products("/products customer 1", {"X-USER-ID": "1"})

    @task(1)
    def no_customer(self):
        self.products("/products", {})
