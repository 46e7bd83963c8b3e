"""An OTLP/gRPC trace sink for scripts/bench: accepts every export and discards it.

It answers TraceService/Export with an empty ExportTraceServiceResponse without decoding
the request (grpcio, no generated code), so that it costs as little CPU as a collector
could, and counts what it got. Prints "listening address=127.0.0.1:PORT" once it serves;
on SIGTERM prints "otlp-sink: N exports, N bytes" and stops.

    python otlp-sink.py
"""

import signal
import threading
from concurrent import futures

import grpc

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main():
    counts = {"exports": 0, "bytes": 0}
    lock = threading.Lock()

    def export(request, context):
        with lock:
            counts["exports"] += 1
            counts["bytes"] += len(request)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"otlp-sink listening address=127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    print(f"otlp-sink: {counts['exports']} exports, {counts['bytes']} bytes", flush=True)


if __name__ == "__main__":
    main()
