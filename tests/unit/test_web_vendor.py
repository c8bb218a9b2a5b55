"""The web chat's vendored scripts (marked, DOMPurify) are exactly what scripts/vendor_web.py took from npm.

MANIFEST.json records each package's pinned version, npm's integrity of its tarball, its licence and the sha256 of
every file taken; a file edited, swapped or left out by hand fails here. Every vendored script the page loads is
served by gated itself (no CDN: the page works offline, and its Content-Security-Policy allows only 'self').
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

from kanmon.web.webchat import ASSETS

STATIC = Path(str(resources.files("kanmon.web") / "static"))
VENDOR = STATIC / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text(encoding="utf-8"))


def test_every_vendored_file_has_the_sha256_the_manifest_records() -> None:
    recorded = {name: digest for package in MANIFEST.values() for name, digest in package["files"].items()}
    on_disk = {path.name for path in VENDOR.iterdir()} - {"MANIFEST.json"}
    assert on_disk == set(recorded)
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_each_package_is_pinned_with_its_licence_and_npm_integrity() -> None:
    assert set(MANIFEST) == {"marked", "dompurify"}
    for name, package in MANIFEST.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"]), name
        assert package["integrity"].startswith("sha512-"), name
        assert package["licence"] and any(".LICENSE" in file for file in package["files"]), name
    script = (VENDOR / "marked.umd.js").read_text(encoding="utf-8")
    assert f"marked v{MANIFEST['marked']['version']}" in script[:200]
    assert f"DOMPurify {MANIFEST['dompurify']['version']}" in (VENDOR / "purify.min.js").read_text()[:200]


def test_the_page_loads_only_scripts_gated_serves() -> None:
    page = (STATIC / "chat.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script src="\{\{root\}\}/chat-assets/([^"]+)"', page)
    assert "vendor/marked.umd.js" in sources and "vendor/purify.min.js" in sources
    assert sources.index("vendor/purify.min.js") < sources.index("chat-markdown.js") < sources.index("chat.js")
    assert all(source in ASSETS for source in sources)
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
