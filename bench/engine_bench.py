"""Engine overhead benchmark: deploy and teardown of N fleet deckies through the engine, next to raw compose.

For each size (default 10 and 30 deckies, two services each, so 30 and 90 containers) and each of N runs:

1. raw: ``docker compose -p decnet-fleet -f <file> up -d --pull never`` on the file the engine renders, then
   ``down --volumes``;
2. engine: :func:`deckies.engine.runtime.deploy_deckies` on all deckies, then
   :func:`deckies.engine.runtime.teardown_deckies` (what a fleet teardown does: one ``rm --stop`` for the
   deckies' containers, a label sweep, the network pruned).

It prints the median wall time of each and the engine/raw ratio. Everything runs against a throwaway SQLite
database and data dir (nothing touches the configured database), on a random free 10.x /24, and removes what
it created. Needs the engine and the ``decnet/base`` and ``decnet/opencanary`` images.

    .venv/bin/python bench/engine_bench.py [--sizes 10 30] [--runs 3] [--services ftp http]
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POOL = ipaddress.IPv4Network("10.216.0.0/14")


def _setup_django(workdir: Path) -> None:
    # Before django.setup(): the bench gets its own data dir and database, never the configured ones.
    os.environ["DECNET_DATA_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "decnet_site.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _free_subnet() -> str:
    import docker

    api = docker.APIClient(version="auto", timeout=10)
    used = [
        ipaddress.IPv4Network(cfg["Subnet"], strict=False)
        for net in api.networks()
        for cfg in (net.get("IPAM") or {}).get("Config") or []
        if cfg.get("Subnet") and ":" not in cfg["Subnet"]
    ]
    api.close()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout.split("\n")
    used += [ipaddress.IPv4Network(r.split()[0], strict=False) for r in routes if r and "/" in r.split()[0]]
    candidates = list(POOL.subnets(new_prefix=24))
    random.shuffle(candidates)
    return str(next(n for n in candidates if not any(n.overlaps(u) for u in used)))


def _make_deckies(count: int, services: list[str], tag: str) -> list[Any]:
    from deckies.models import Decky, Network
    from deckies.services import decky_create

    network = Network.objects.create(name=f"bench-{tag}", subnet=_free_subnet())
    families = ("linux", "windows", "embedded")
    for index in range(count):
        decky_create(
            name=f"b{tag}-{index:02d}",
            services=services,
            network=network,
            hostname=f"bench-{index:02d}",
            nmap_os=families[index % len(families)],
        )
    rows = Decky.objects.filter(network=network).select_related("network", "host").prefetch_related("services")
    return list(rows.order_by("name"))


def _timed(func: Any, *args: Any) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def _raw(args: list[str], path: str) -> None:
    from django.conf import settings

    from deckies.engine import naming, runner

    runner.run_compose(naming.fleet_project(), path, args, docker_url=settings.DECNET_DEFAULT_DOCKER_URL)


def _mark(deckies: list[Any], state: str) -> None:
    from deckies.models import Decky

    Decky.objects.filter(pk__in=[d.pk for d in deckies]).update(state=state)


def bench(sizes: list[int], runs: int, services: list[str]) -> list[dict[str, Any]]:
    from deckies import scopes
    from deckies.engine import docker_api, naming, runtime

    missing = docker_api.missing_images(None, ["decnet/base:1", "decnet/opencanary:1"])
    if missing:
        raise SystemExit(f"missing images: {', '.join(missing)} (run manage.py build_images)")
    results = []
    for size in sizes:
        tag = secrets.token_hex(2)
        deckies = _make_deckies(size, services, tag)
        scope = scopes.fleet_scope(None)
        names = [d.name for d in deckies]

        render_all = functools.partial(scopes.render_fleet, None, include=deckies)
        render_rest = functools.partial(scopes.render_fleet, None, exclude=names)
        path = runtime.write_file(scope, render_all())
        raw_up, raw_down, eng_up, eng_down = [], [], [], []
        try:
            for _ in range(runs):
                raw_up.append(_timed(_raw, ["up", "-d", "--pull", "never"], path))
                raw_down.append(_timed(_raw, ["down", "--volumes"], path))
                _mark(deckies, "pending")
                eng_up.append(_timed(runtime.deploy_deckies, scope, render_all, names))
                _mark(deckies, "tearing_down")  # as the operations layer records it before a teardown
                eng_down.append(_timed(runtime.teardown_deckies, scope, render_rest, render_all, names))
                path = runtime.write_file(scope, render_all())  # the raw runs need the file back
        finally:
            labels = {naming.LABEL_PROJECT: naming.fleet_project()}
            ours = [
                c
                for c in docker_api.list_containers(None, labels)
                if c.labels.get(naming.LABEL_DECKY, "").startswith(f"b{tag}-")
            ]
            docker_api.remove_containers(None, ours)
            docker_api.remove_networks(
                None, [n for n in docker_api.list_networks(None, labels) if n["Name"].endswith(f"bench-{tag}")]
            )
            Path(path).unlink(missing_ok=True)
        containers = size * (1 + len(services))
        results.append({"size": size, "containers": containers, "op": "deploy", "raw": raw_up, "engine": eng_up})
        results.append({"size": size, "containers": containers, "op": "teardown", "raw": raw_down, "engine": eng_down})
    return results


def report(results: list[dict[str, Any]], runs: int) -> str:
    lines = [
        f"median of {runs} run(s); raw = docker compose up -d / down on the same rendered file",
        f"{'deckies':>7} {'containers':>10} {'operation':<9} {'raw (s)':>8} {'engine (s)':>10} {'ratio':>6}",
    ]
    for row in results:
        raw = statistics.median(row["raw"])
        engine = statistics.median(row["engine"])
        lines.append(
            f"{row['size']:>7} {row['containers']:>10} {row['op']:<9} {raw:>8.2f} {engine:>10.2f} {engine / raw:>6.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", nargs="+", default=["ftp", "http"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="decnet-bench-") as workdir:
        _setup_django(Path(workdir))
        print(report(bench(args.sizes, args.runs, args.services), args.runs))


if __name__ == "__main__":
    main()
