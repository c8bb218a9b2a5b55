"""Local agent images, built on the engine from files already here (no registry is ever contacted)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

from kanmon.container import echo_agent

__all__ = ["build_echo_image"]


def build_echo_image(client: Any, base_image: str, repository: str = "kanmon-echo") -> str:
    """Build the echo agent on ``base_image`` (any local image with python3) and return its tag.

    The tag carries a hash of the agent's source, so an unchanged agent is not rebuilt under a new name.
    """
    source = Path(echo_agent.__file__).read_bytes()
    tag = f"{repository}:{hashlib.sha256(source + base_image.encode()).hexdigest()[:12]}"
    dockerfile = (
        f"FROM {base_image}\nCOPY echo_agent.py /opt/kanmon/echo_agent.py\n"
        'CMD ["python3", "-u", "/opt/kanmon/echo_agent.py"]\n'
    ).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile, "echo_agent.py": source}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, pull=False, tag=tag, rm=True)
    return tag
