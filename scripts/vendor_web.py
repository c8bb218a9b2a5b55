"""Fetch the web chat's vendored scripts from npm (`npm pack`) and record what was taken in their MANIFEST.json.

Run from the repository: ``python scripts/vendor_web.py``. Each package is packed at its pinned version, the
tarball is checked against the integrity npm states for it, and the files the page loads (and their licences) are
copied into kanmon/web/static/vendor/ with their sha256 in MANIFEST.json, which tests/unit/test_web_vendor.py checks.
To update, change a version below, run this, read the diff of the upstream changelog, and run the browser tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "kanmon" / "web" / "static" / "vendor"

# package, version, licence, {file in the tarball: name under vendor/}
PACKAGES = [
    ("marked", "18.2.1", "MIT", {"package/lib/marked.umd.js": "marked.umd.js", "package/LICENSE": "marked.LICENSE"}),
    (
        "dompurify",
        "3.5.0",
        "MPL-2.0 OR Apache-2.0",
        {
            "package/dist/purify.min.js": "purify.min.js",
            "package/LICENSE": "dompurify.LICENSE",
            "package/LICENSE-MPL": "dompurify.LICENSE-MPL",
        },
    ),
]


def main() -> int:
    manifest: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as work:
        for name, version, licence, files in PACKAGES:
            spec = f"{name}@{version}"
            packed = json.loads(
                subprocess.run(
                    ["npm", "pack", spec, "--json", "--pack-destination", work],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )[0]
            tarball = Path(work) / packed["filename"]
            algorithm, _, expected = packed["integrity"].partition("-")
            actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
            if actual != expected:
                print(f"{spec}: the tarball does not match npm's integrity {packed['integrity']}", file=sys.stderr)
                return 1
            taken: dict[str, str] = {}
            with tarfile.open(tarball) as archive:
                for member, target in files.items():
                    extracted = archive.extractfile(member)
                    assert extracted is not None, member
                    data = extracted.read()
                    (VENDOR / target).write_bytes(data)
                    taken[target] = hashlib.sha256(data).hexdigest()
            manifest[name] = {"version": version, "licence": licence, "integrity": packed["integrity"], "files": taken}
    (VENDOR / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"vendored {', '.join(f'{n}@{v}' for n, v, _, _ in PACKAGES)} into {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
