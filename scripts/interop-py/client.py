"""A Python gRPC client of our discount service, over TLS, trusting keys/cert.pem.

Checks every field of the answers for a fixed set of cases, `pct` as a 32-bit float equal
to 0.1, the status code for a request without a product, and the standard health and
reflection services. Prints one line per case and a closing "N passed, N failed" line;
exits non-zero on any failure.

    python client.py --target localhost:11443 --cert keys/cert.pem
"""

import argparse
import struct
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import ecommerce_pb2
import ecommerce_pb2_grpc

PCT_F32 = struct.unpack("<f", struct.pack("<f", 0.1))[0]

# (customer id or None, price, expected discounted price or None for "no discount")
CASES = [
    (1, 99999, 89999),
    (1, 150000, 135000),
    (1, 32999, 29699),
    (1, 1, 0),
    (1, 9, 8),
    (1, 2147483647, 1932735282),
    (1, 0, None),
    (1, -100, None),
    (2, 99999, None),
    (0, 99999, None),
    (None, 99999, None),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--cert", required=True, help="PEM certificates to trust")
    args = parser.parse_args()

    with open(args.cert, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(args.target, credentials)
    stub = ecommerce_pb2_grpc.DiscountStub(channel)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok    {name}")
        else:
            failed += 1
            print(f"FAIL  {name} {detail}")

    for customer_id, price, expected in CASES:
        request = ecommerce_pb2.DiscountRequest(
            product=ecommerce_pb2.Product(
                id=7, slug="a-slug", description="a description", price_in_cents=price
            )
        )
        if customer_id is not None:
            request.customer.CopyFrom(
                ecommerce_pb2.Customer(id=customer_id, first_name="F", last_name="L")
            )
        answer = stub.ApplyDiscount(request, timeout=5).product
        echoed = (answer.id, answer.slug, answer.description, answer.price_in_cents) == (
            7, "a-slug", "a description", price)
        value = answer.discount_value
        if expected is None:
            ok = echoed and value.pct == 0 and value.value_in_cents == 0
        else:
            ok = echoed and value.pct == PCT_F32 and value.value_in_cents == expected
        check(f"customer {customer_id}, price {price}", ok, repr(answer))

    try:
        stub.ApplyDiscount(ecommerce_pb2.DiscountRequest(), timeout=5)
        check("no product is INVALID_ARGUMENT", False, "the call succeeded")
    except grpc.RpcError as error:
        check("no product is INVALID_ARGUMENT",
              error.code() == grpc.StatusCode.INVALID_ARGUMENT, repr(error.code()))

    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "ecommerce.Discount"]:
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        check(f"health {service!r} is SERVING",
              status == health_pb2.HealthCheckResponse.SERVING, repr(status))

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = [s.name for r in responses for s in r.list_services_response.service]
    check("reflection lists ecommerce.Discount", "ecommerce.Discount" in names, repr(names))

    print(f"interop client: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
