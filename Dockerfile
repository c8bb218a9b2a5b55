# The gated image: `gated run` as a non-root user, the HTTP surface on :8080, a HEALTHCHECK on /readyz.
#
#   docker build -t kanmon:latest .                                   # base and packages from the registries
#   docker build --network none --build-arg BASE_IMAGE=my-python:3.11 -t kanmon:latest .
#                                                                      # offline: packages from wheelhouse/
#
# BASE_IMAGE is any image with python3.11 and /bin/sh (default: the official slim one; scripts/images.sh passes a
# local one built from this machine's Debian python). When wheelhouse/ holds wheels (scripts/images.sh fills it with
# `pip download`), nothing is fetched: pip itself runs from its wheel there, so the base image needs no pip either.
# Otherwise pip and the packages come from the package index (the base image's pip fetches pip). See docs/deploy.md.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------- build
FROM ${BASE_IMAGE} AS build
ENV PIP_CONFIG_FILE=/wheelhouse/pip.conf \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
# pip runs from its own wheel (/wheelhouse/pip.whl), so the base image needs no pip and the venv gets none. With wheels
# in the wheelhouse it never looks at an index. The dependencies get a layer of their own: a change to kanmon's code
# reuses it.
RUN set -eu; \
    cd /wheelhouse; \
    if ls pip-*.whl >/dev/null 2>&1; then \
        printf '[global]\nno-index = true\nfind-links = /wheelhouse\n' >pip.conf; \
    else \
        printf '[global]\n' >pip.conf; \
        python3 -m pip download --quiet --no-deps --dest /wheelhouse pip; \
    fi; \
    ln -sf "$(ls pip-*.whl | tail -n 1)" pip.whl; \
    python3 -m venv --without-pip /opt/kanmon; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        >/tmp/requirements.txt; \
    python3 /wheelhouse/pip.whl/pip --python /opt/kanmon/bin/python install --quiet -r /tmp/requirements.txt
COPY kanmon/ kanmon/
RUN set -eu; \
    python3 /wheelhouse/pip.whl/pip wheel --quiet --no-deps --wheel-dir /dist .; \
    python3 /wheelhouse/pip.whl/pip --python /opt/kanmon/bin/python install --quiet --no-deps /dist/kanmon-*.whl; \
    /opt/kanmon/bin/gated --version

# -------------------------------------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
# gated's user. 1000 is also the default agent user (runtime.docker.user): group folders gated creates are then the
# agents' own, with no chown (which a non-root gated could not do anyway).
ARG UID=1000
ARG GID=1000
COPY --from=build /opt/kanmon /opt/kanmon
RUN set -eu; \
    grep -q "^[^:]*:[^:]*:$GID:" /etc/group || echo "kanmon:x:$GID:" >>/etc/group; \
    grep -q "^[^:]*:[^:]*:$UID:" /etc/passwd || echo "kanmon:x:$UID:$GID:kanmon:/var/lib/kanmon:/bin/sh" >>/etc/passwd; \
    mkdir -p /var/lib/kanmon; \
    chown "$UID:$GID" /var/lib/kanmon
ENV PATH=/opt/kanmon/bin:$PATH \
    HOME=/var/lib/kanmon \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KANMON_DATA_DIR=/var/lib/kanmon \
    KANMON_HTTP_LISTEN=0.0.0.0:8080
USER ${UID}:${GID}
WORKDIR /var/lib/kanmon
EXPOSE 8080
# ready = the store answers, the runtimes in use answer, and the loop ticked lately (503 with the reasons otherwise)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('KANMON_HTTP_LISTEN', ':8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
ENTRYPOINT ["gated"]
CMD ["run"]
