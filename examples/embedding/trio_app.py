"""A Trio app that is its own mesh client: ``trimesh.open_mesh`` in-process, no sidecar.

    python -m examples.embedding.trio_app --registry registry.yaml --config rules.yaml \\
        [--count 10] [--header cookie=user=jason] [URL]

It joins the mesh as service ``productpage``, reads instances from the registry file and route
rules from the config file (both re-read when they change, like a sidecar's), calls URL (default
``http://reviews:9080/reviews/0``) COUNT times through the mesh — RouteRules, balancing, retries,
timeouts, faults apply exactly as in a sidecar — and prints one JSON line per call:
``{"status": 200, "upstream": "reviews-v2", "flags": ""}``.
"""

from __future__ import annotations

import argparse
import json

import trio

import trimesh


async def main(args: argparse.Namespace) -> int:
    headers = [tuple(h.split("=", 1)) for h in args.header]
    failures = 0
    async with trimesh.open_mesh(service=args.service, registry=args.registry,
                                 config=args.config, control=args.control) as mesh:
        for _ in range(args.count):
            r = await mesh.request("GET", args.url, headers=headers)
            print(json.dumps({"status": r.status, "upstream": r.header("x-upstream-name"),
                              "flags": r.flags}), flush=True)
            failures += r.status >= 500
    return 1 if failures else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://reviews:9080/reviews/0")
    parser.add_argument("--service", default="productpage")
    parser.add_argument("--registry", default=None, help="registry YAML (instances)")
    parser.add_argument("--config", action="append", default=[], help="config YAML (repeatable)")
    parser.add_argument("--control", default=None, help="the control's URL, if any")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(trio.run(main, parse_args()))
