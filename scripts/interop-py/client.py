"""A Python gRPC client of our discount service (grpcio), over TLS, trusting keys/cert.pem.

Sends every case of scripts/interop-cases.json and checks every field of each answer
(`pct` as a 32-bit float) or the status code of each error, then the standard health and
reflection services. With --client-cert and --client-key it presents a client certificate
(mutual TLS). With --expect-refused it makes one call, presenting no certificate, which
must fail with UNAVAILABLE: the server refused the handshake. Prints one line per failure,
naming the case and the field, and a closing "N passed, N failed" line; exits non-zero on
any failure.

    python client.py --target localhost:11443 --cert keys/cert.pem --cases scripts/interop-cases.json
"""

import argparse
import json
import struct
import sys

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import ecommerce_pb2
import ecommerce_pb2_grpc

LANGUAGE = "python"


def f32(x):
    """x rounded to the nearest 32-bit float, as the proto's `float pct` carries it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def build_request(case):
    """The case's DiscountRequest, with unknown fields kept by the protobuf runtime."""
    request = json_format.ParseDict(case["request"], ecommerce_pb2.DiscountRequest(),
                                    ignore_unknown_fields=False)
    if "description_bytes" in case:
        request.product.description = "d" * case["description_bytes"]
    if "unknown_fields_hex" in case:
        # Parsing keeps fields this side does not know; serializing sends them on.
        raw = request.SerializeToString() + bytes.fromhex(case["unknown_fields_hex"])
        request = ecommerce_pb2.DiscountRequest.FromString(raw)
    return request


def differences(case, request, response):
    """Every field of the answer that is not what the case expects, as readable strings."""
    if not response.HasField("product"):
        return ["product is missing"]
    got = response.product
    sent = request.product
    expected_value = case["expect"]["discount_value"]
    fields = [
        ("product.id", got.id, sent.id),
        ("product.slug", got.slug, sent.slug),
        ("product.description", got.description, sent.description),
        ("product.price_in_cents", got.price_in_cents, sent.price_in_cents),
        ("product.discount_value.pct", got.discount_value.pct, f32(expected_value["pct"])),
        ("product.discount_value.value_in_cents", got.discount_value.value_in_cents,
         expected_value["value_in_cents"]),
    ]
    return [f"{name} is {short(value)}, expected {short(wanted)}"
            for name, value, wanted in fields if value != wanted]


def short(value):
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(value)} characters)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--cert", required=True, help="PEM certificates to trust")
    parser.add_argument("--cases", required=True, help="scripts/interop-cases.json")
    parser.add_argument("--client-cert", help="PEM client certificate chain to present")
    parser.add_argument("--client-key", help="its PEM private key")
    parser.add_argument("--expect-refused", action="store_true",
                        help="present no certificate and expect the handshake to be refused")
    args = parser.parse_args()

    with open(args.cert, "rb") as f:
        trusted = f.read()
    identity = {}
    if args.client_cert:
        with open(args.client_cert, "rb") as c, open(args.client_key, "rb") as k:
            identity = {"certificate_chain": c.read(), "private_key": k.read()}
    credentials = grpc.ssl_channel_credentials(root_certificates=trusted, **identity)
    channel = grpc.secure_channel(args.target, credentials)
    stub = ecommerce_pb2_grpc.DiscountStub(channel)
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    passed = failed = 0

    def check(name, problems):
        nonlocal passed, failed
        if problems:
            failed += 1
            for problem in problems:
                print(f"FAIL  {LANGUAGE} client, case '{name}': {problem}")
        else:
            passed += 1

    if args.expect_refused:
        request = build_request(cases[0])
        try:
            stub.ApplyDiscount(request, timeout=5)
            check("no client certificate", ["the call succeeded, expected UNAVAILABLE"])
        except grpc.RpcError as error:
            code = error.code()
            check("no client certificate", [] if code == grpc.StatusCode.UNAVAILABLE else
                  [f"status is {code.name}, expected UNAVAILABLE"])
        return finish(passed, failed)

    for case in cases:
        request = build_request(case)
        wanted_code = case["expect"].get("code")
        try:
            response = stub.ApplyDiscount(request, timeout=10)
        except grpc.RpcError as error:
            code = error.code().name
            check(case["name"], [] if code == wanted_code else
                  [f"status is {code} ({error.details()}), expected "
                   f"{wanted_code or 'an answer'}"])
            continue
        if wanted_code:
            check(case["name"], [f"the call succeeded, expected status {wanted_code}"])
        else:
            check(case["name"], differences(case, request, response))

    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "ecommerce.Discount"]:
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        check(f"health {service!r}", [] if status == health_pb2.HealthCheckResponse.SERVING else
              [f"status is {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}, "
               "expected SERVING"])

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = [s.name for r in responses for s in r.list_services_response.service]
    check("reflection", [] if "ecommerce.Discount" in names else
          [f"list_services is {names}, expected ecommerce.Discount in it"])
    finish(passed, failed)


def finish(passed, failed):
    print(f"{LANGUAGE} client (grpcio {grpc.__version__}): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
