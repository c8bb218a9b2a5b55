"""Docker run overhead (SPEC §15): kanmon's spawn → first output → removal vs `docker run --rm -i` of the same agent.

    source /tmp/kanmon-services/env   # DOCKER_HOST of the engine scripts/services.sh started
    .venv/bin/python bench/docker_overhead.py [--runs 10] [--base-image kanmon-test-python:3.11]

Prints the medians and their ratio (target ≤ 1.0); it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import docker

from kanmon.container import Output, RunSpec
from kanmon.container.docker import DockerRuntime
from kanmon.container.images import build_echo_image

PAYLOAD = json.dumps({"prompt": '<messages><message sender="bench">ping</message></messages>'}).encode()


async def kanmon_run(runtime: DockerRuntime, image: str, data_dir: Path) -> tuple[float, float]:
    """Seconds to the first output and to the container's removal, through DockerRuntime."""
    spec = RunSpec(
        run_id=uuid.uuid4().hex[:12],
        instance="bench",
        folder="bench",
        group_dir=data_dir / "groups" / "bench",
        image=image,
        stdin=PAYLOAD,
    )
    start = time.perf_counter()
    first = 0.0
    async for event in await runtime.start(spec):
        if isinstance(event, Output) and not first:
            first = time.perf_counter() - start
    return first, time.perf_counter() - start


def docker_cli_run(image: str) -> float:
    """Seconds for `docker run --rm -i` of the same image with the same input, until it has exited and been removed."""
    start = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "-i", "--pull=never", "--network", "none", image],
        input=PAYLOAD,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--base-image", default="kanmon-test-python:3.11")
    args = parser.parse_args()
    client = docker.from_env()
    image = build_echo_image(client, args.base_image)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = DockerRuntime(data_dir=Path(tmp), client=client)
        await kanmon_run(runtime, image, Path(tmp))  # warm-up, uncounted
        docker_cli_run(image)
        kanmon = [await kanmon_run(runtime, image, Path(tmp)) for _ in range(args.runs)]
        cli = [docker_cli_run(image) for _ in range(args.runs)]
        runtime.close()
    first = statistics.median(k[0] for k in kanmon)
    total = statistics.median(k[1] for k in kanmon)
    baseline = statistics.median(cli)
    print(f"kanmon DockerRuntime: first output {first * 1000:7.1f} ms, removed {total * 1000:7.1f} ms")
    print(f"docker run --rm -i : exited+removed {baseline * 1000:7.1f} ms (medians of {args.runs} runs)")
    print(f"ratio kanmon/docker-run: {total / baseline:.2f}  (target ≤ 1.0)")


if __name__ == "__main__":
    asyncio.run(main())
