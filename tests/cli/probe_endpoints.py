"""Probes every service in an `sfpo local` endpoints file with ordinary clients.

gRPC: Debian's python3-grpcio calls the standard /grpc.health.v1.Health/Check with raw bytes
(an empty HealthCheckRequest), so nothing of ours is involved on the client side.
HTTP: urllib fetches each metrics URL.

Usage: /usr/bin/python3 probe_endpoints.py ENDPOINTS_JSON
Prints one JSON list: per service, the fields of the file plus what the probes saw.
"""
import json
import sys
import urllib.request

import grpc


def probe(service):
    seen = dict(service)
    with grpc.insecure_channel(service["grpc"]) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            seen["health_response_hex"] = check(b"", timeout=5).hex()
        except grpc.RpcError as e:
            seen["health_error"] = "%s: %s" % (e.code(), e.details())
    try:
        with urllib.request.urlopen(service["metrics"], timeout=5) as response:
            seen["http_status"] = response.status
            seen["content_type"] = response.headers.get("Content-Type", "")
            seen["body"] = response.read().decode("utf-8")
    except Exception as e:  # Reported to the C++ test, which fails with it.
        seen["http_error"] = repr(e)
    return seen


def main():
    with open(sys.argv[1]) as f:
        endpoints = json.load(f)
    print(json.dumps([probe(s) for s in endpoints["services"]]))


if __name__ == "__main__":
    main()
