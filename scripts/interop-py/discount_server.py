"""A Python gRPC discount server with the same rule as ours, for interop tests.

It loads keys/cert.pem (the server certificate, then the CA) and keys/private.key, as the
old Python service did (with --client-ca, it also requires a client certificate issued by
that CA), and prints "listening address=127.0.0.1:PORT" once it serves
(port 0 lets the OS pick). Stops on SIGTERM or SIGINT.

    python discount_server.py --cert keys/cert.pem --key keys/private.key
"""

import argparse
import signal
import threading
from concurrent import futures
from decimal import Decimal

import grpc

import ecommerce_pb2
import ecommerce_pb2_grpc


class Discount(ecommerce_pb2_grpc.DiscountServicer):
    def ApplyDiscount(self, request, context):
        if not request.HasField("product"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "DiscountRequest.product is required")
        product = ecommerce_pb2.Product()
        product.CopyFrom(request.product)
        price = product.price_in_cents
        if request.customer.id == 1 and price > 0:
            discounted = int(Decimal(price) - Decimal(price) * Decimal("0.1"))
            product.discount_value.CopyFrom(
                ecommerce_pb2.DiscountValue(pct=0.1, value_in_cents=discounted))
        else:
            product.discount_value.CopyFrom(ecommerce_pb2.DiscountValue())
        return ecommerce_pb2.DiscountResponse(product=product)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", help="require client certificates issued by this CA")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with open(args.cert, "rb") as c, open(args.key, "rb") as k:
        pair = (k.read(), c.read())
    if args.client_ca:
        with open(args.client_ca, "rb") as f:
            credentials = grpc.ssl_server_credentials(
                [pair], root_certificates=f.read(), require_client_auth=True)
    else:
        credentials = grpc.ssl_server_credentials([pair])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ecommerce_pb2_grpc.add_DiscountServicer_to_server(Discount(), server)
    port = server.add_secure_port(f"127.0.0.1:{args.port}", credentials)
    server.start()
    print(f"python discount server listening address=127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
