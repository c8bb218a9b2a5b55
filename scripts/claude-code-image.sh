#!/usr/bin/env bash
# The reference Claude Code agent image (agents/claude-code/Dockerfile, README "Run a real agent"), built without any
# image registry: on the local python image, with Claude Code's native binary from its npm package and the mcp SDK's
# wheels for kanmon's MCP tools (scripts/claude-code-wheels.sh; the npm registry and the package index are the only
# things fetched, once; both are cached) and this host's CA bundle. Then a smoke test: the image's real claude, given no
# credentials and no network, must make the runner answer with kanmon's error block, and the image's python must have
# the mcp SDK.
#
#   scripts/claude-code-image.sh [TAG]      default kanmon-claude-code:latest
#
# CLAUDE_CODE_VERSION (default below) pins Claude Code; KANMON_BASE_IMAGE (default: scripts/services.sh's python
# image) is the base, any glibc image with python3.11. Needs DOCKER_HOST (scripts/services.sh), npm and pip.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-kanmon-claude-code:latest}
VERSION=${CLAUDE_CODE_VERSION:-2.1.332}
BASE_IMAGE=${KANMON_BASE_IMAGE:-${KANMON_TEST_PYTHON_IMAGE:-kanmon-test-python:3.11}}
CACHE=${KANMON_SERVICES_DIR:-/tmp/kanmon-services}/cache
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

case $(uname -m) in
x86_64) platform=linux-x64 ;;
aarch64 | arm64) platform=linux-arm64 ;;
*) echo "no Claude Code binary for $(uname -m)" >&2; exit 1 ;;
esac
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || { echo "no base image $BASE_IMAGE (scripts/services.sh)" >&2; exit 1; }
[ -s "$CA_BUNDLE" ] || { echo "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)" >&2; exit 1; }

mkdir -p "$CACHE"
wheels=$(bash "$ROOT/scripts/claude-code-wheels.sh")
tgz=$CACHE/anthropic-ai-claude-code-$platform-$VERSION.tgz
if [ ! -s "$tgz" ]; then
  echo "npm pack @anthropic-ai/claude-code-$platform@$VERSION" >&2
  (cd "$CACHE" && npm pack --silent "@anthropic-ai/claude-code-$platform@$VERSION" >/dev/null)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" package/claude
mv "$work/package/claude" "$work/claude"
for file in Dockerfile claude_runner.py action_bridge.py kanmon_mcp.py; do cp "$ROOT/agents/claude-code/$file" "$work/"; done
cp -r "$wheels" "$work/wheelhouse"
cp "$CA_BUNDLE" "$work/ca-certificates.crt"
"$work/claude" --version >&2

# the legacy builder (the only one without buildx) warns that it is deprecated: that warning is noise here
DOCKER_BUILDKIT=0 docker build --quiet --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --label "kanmon.claude-code.version=$VERSION" -t "$TAG" "$work" >/dev/null
echo "built $TAG (Claude Code $VERSION on $BASE_IMAGE)" >&2

out=$(echo '{"prompt": "<messages><message sender=\"smoke\">hello</message></messages>"}' |
  docker run --rm -i --pull=never --network none "$TAG" || true)
if ! grep -q '"status": "error"' <<<"$out" || ! grep -q 'authentication_failed' <<<"$out"; then
  printf 'smoke test failed: without credentials the runner should report authentication_failed; got:\n%s\n' "$out" >&2
  exit 1
fi
echo "smoke test: without credentials the image answers kanmon's protocol with an error block, as it should" >&2
if ! docker run --rm --pull=never --network none --entrypoint python3 "$TAG" -c 'import mcp.server.mcpserver' >&2; then
  echo "smoke test failed: the image's python3 cannot import the mcp SDK (kanmon's MCP tools would be missing)" >&2
  exit 1
fi
echo "smoke test: the image's python3 has the mcp SDK, so the runner offers kanmon's MCP tools" >&2
echo "$TAG"
