"""The Docker engine the suite runs against is real: build an image from a local root filesystem, pipe stdin through."""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from docker.utils.socket import STDOUT, frames_iter

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.docker
def test_an_image_built_from_a_local_rootfs_echoes_stdin(docker_client: Any, tmp_path: Path) -> None:
    # Given a busybox root filesystem made on this machine (no registry anywhere)
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["bash", str(ROOT / "scripts" / "rootfs.sh"), "busybox", str(tarball)], check=True)
    tag = f"kanmon-engine-check-{uuid.uuid4().hex[:8]}"
    docker_client.api.import_image(src=str(tarball), repository=tag, tag="latest")
    container_id = None
    try:
        # When a container of it reads stdin to EOF
        host_config = docker_client.api.create_host_config(network_mode="none", cap_drop=["ALL"])
        container_id = docker_client.api.create_container(
            f"{tag}:latest", ["cat"], stdin_open=True, host_config=host_config, labels={"kanmon.test": "engine"}
        )["Id"]
        sock = docker_client.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stream": 1})
        docker_client.api.start(container_id)
        raw = sock._sock
        raw.sendall(b'{"prompt": "hello from the host"}\n')
        raw.shutdown(socket.SHUT_WR)
        output = b"".join(data for stream, data in frames_iter(sock, tty=False) if stream == STDOUT)
        sock.close()
        # Then what went in comes out, and the container exits cleanly
        assert output == b'{"prompt": "hello from the host"}\n'
        assert docker_client.api.wait(container_id, timeout=30)["StatusCode"] == 0
    finally:
        if container_id is not None:
            docker_client.api.remove_container(container_id, force=True)
        docker_client.images.remove(f"{tag}:latest", force=True)
