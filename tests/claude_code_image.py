"""The reference Claude Code agent's test image: ``agents/claude-code/Dockerfile.test`` on the local python image.

The build context holds only the files that Dockerfile copies (never a real ``claude`` binary someone left beside
them) and the wheelhouse of the mcp SDK (``scripts/claude-code-wheels.sh``: a ``pip download`` the first time, then
cached), and the tag carries a hash of them and of the base image, so an unchanged agent is not rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AGENT_DIR = ROOT / "agents" / "claude-code"


def wheelhouse() -> Path:
    """The directory of the mcp SDK's wheels (``scripts/claude-code-wheels.sh``, which downloads them once)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "claude-code-wheels.sh")], capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"scripts/claude-code-wheels.sh failed:\n{done.stderr}"
    return Path(done.stdout.strip())


def context_files() -> dict[str, Path]:
    """The build context: name in the context → file."""
    files = {"Dockerfile": AGENT_DIR / "Dockerfile.test"}
    for name in ("claude_runner.py", "action_bridge.py", "kanmon_mcp.py"):
        files[name] = AGENT_DIR / name
    for name in ("fake_claude.py", "fake_mcp.py"):
        files[f"fake/{name}"] = AGENT_DIR / "fake" / name
    for transcript in sorted((AGENT_DIR / "fake" / "transcripts").glob("*.jsonl")):
        files[f"fake/transcripts/{transcript.name}"] = transcript
    for wheel in sorted(wheelhouse().iterdir()):
        files[f"wheelhouse/{wheel.name}"] = wheel
    return files


def build_claude_code_test_image(client: Any, base_image: str, repository: str = "kanmon-test-claude-code") -> str:
    """Build the test image on ``base_image`` (any local image with python3, never pulled) and return its tag."""
    files = context_files()
    digest = hashlib.sha256(base_image.encode())
    for name, path in files.items():
        digest.update(name.encode() + b"\0" + path.read_bytes())
    tag = f"{repository}:{digest.hexdigest()[:12]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, path in files.items():
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name == "fake/fake_claude.py" else 0o644  # it is the image's `claude`
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(
        fileobj=context, custom_context=True, pull=False, tag=tag, rm=True, buildargs={"BASE_IMAGE": base_image}
    )
    return tag
