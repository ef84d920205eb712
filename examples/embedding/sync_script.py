"""A plain synchronous script in the mesh: ``trimesh.start_in_thread`` + ``HTTP_PROXY``.

    python -m examples.embedding.sync_script --registry registry.yaml --config rules.yaml \\
        [--count 10] [--header cookie=user=jason] [URL]

``start_in_thread`` runs a sidecar-like outbound proxy in a background thread and (with
``set_env=True``) puts its URL in ``HTTP_PROXY``/``http_proxy`` and loopback in ``NO_PROXY``, so
any HTTP client that honours the convention — here the standard library's ``urllib`` — is routed
by the mesh without knowing about it. Prints one JSON line per call, like the Trio example.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

import trimesh


def call(url: str, headers: dict[str, str]) -> tuple[int, str | None, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # HTTP_PROXY from the environment
            return r.status, r.headers.get("x-upstream-name"), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("x-upstream-name"), exc.headers.get(
            "x-trimesh-response-flags", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://reviews:9080/reviews/0")
    parser.add_argument("--service", default="productpage")
    parser.add_argument("--registry", default=None)
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--control", default=None)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    headers = dict(h.split("=", 1) for h in args.header)
    failures = 0
    with trimesh.start_in_thread(service=args.service, registry=args.registry,
                                 config=args.config, control=args.control, set_env=True) as mesh:
        print(json.dumps({"proxy": mesh.proxy_url}), flush=True)
        for _ in range(args.count):
            status, upstream, flags = call(args.url, headers)
            print(json.dumps({"status": status, "upstream": upstream, "flags": flags}),
                  flush=True)
            failures += status >= 500
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
