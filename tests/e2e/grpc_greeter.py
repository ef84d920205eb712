"""A tiny gRPC greeter for the e2e tests and bench (grpcio generic handlers, bytes in and out — no
protoc). Methods of ``greeter.Greeter``:

- ``Hello`` (unary): answers ``VERSION:`` + the request;
- ``Many`` (server streaming): the request is a count N; answers N messages ``VERSION:i``;
- ``Chat`` (bidi): echoes every message as ``VERSION:`` + message, as it arrives;
- ``Slow`` (unary): sleeps 2 s, then answers like Hello;
- ``Fail`` (unary): aborts with NOT_FOUND, message ``no such greeting``, trailing metadata
  ``x-why: test``.

Usage: ``python grpc_greeter.py ADDRESS PORT VERSION``; prints ``greeter listening`` when ready.
"""

import sys
import time
from concurrent import futures

import grpc


def main() -> None:
    address, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tag = version.encode() + b":"

    def hello(request, context):
        return tag + request

    def many(request, context):
        for i in range(int(request)):
            yield tag + str(i).encode()

    def chat(requests, context):
        for r in requests:
            yield tag + r

    def slow(request, context):
        time.sleep(2.0)
        return tag + request

    def fail(request, context):
        context.set_trailing_metadata((("x-why", "test"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")

    ident = dict(request_deserializer=None, response_serializer=None)
    handlers = {
        "Hello": grpc.unary_unary_rpc_method_handler(hello, **ident),
        "Many": grpc.unary_stream_rpc_method_handler(many, **ident),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, **ident),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, **ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, **ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("greeter.Greeter",
                                                                          handlers),))
    server.add_insecure_port(f"{address}:{port}")
    server.start()
    print("greeter listening", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
