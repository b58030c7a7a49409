# Test stand-in for python:3.11.14-slim-bookworm (no registry is reachable in CI): Debian 12's
# python3 (3.11) on a debootstrap rootfs, arranged so the production Dockerfiles work unchanged.
# Built by scripts/standin-images.sh; never pushed, never used outside the Swarm test.
ARG BASE
# hadolint ignore=DL3006
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# As Debian's official images do: no fsync per file while unpacking (a throwaway build).
RUN echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/unsafe-io
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python-is-python3 \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -sf /usr/bin/pip3 /usr/bin/pip
# Debian's pip installs `--prefix=P` under P/local/lib/python3.11/dist-packages (scheme posix_local);
# DEB_PYTHON_INSTALL_LAYOUT=deb selects deb_system: P/lib/python3/dist-packages and P/bin. After
# `COPY --from=build /install /usr/local` that is /usr/local/lib/python3/dist-packages, which Debian's
# python3 does not search: a .pth in its dist-packages adds it as a site dir (nested .pth files work).
ENV DEB_PYTHON_INSTALL_LAYOUT=deb
RUN echo "import site; site.addsitedir('/usr/local/lib/python3/dist-packages')" \
      > /usr/lib/python3/dist-packages/zz-usr-local.pth
# The machine's own CA bundle (it may hold an egress proxy's CA), where Debian's pip looks.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
