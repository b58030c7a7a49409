# Test stand-in for eclipse-mosquitto:2.0.22 (no registry is reachable in CI): Debian 12's
# mosquitto as uid/gid 1883 with /mosquitto/{config,data,log}, and openssl for the health check.
# Built by scripts/standin-images.sh; never pushed, never used outside the Swarm test.
ARG BASE
# hadolint ignore=DL3006
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# As Debian's official images do: no fsync per file while unpacking (a throwaway build).
RUN echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/unsafe-io
# The official image's user first, so the package keeps uid 1883.
# hadolint ignore=DL3008
RUN groupadd --system --gid 1883 mosquitto \
 && useradd --system --uid 1883 --gid 1883 --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin mosquitto \
 && apt-get update \
 && apt-get install -y --no-install-recommends mosquitto openssl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log \
 && chown -R 1883:1883 /mosquitto
VOLUME ["/mosquitto/data", "/mosquitto/log"]
EXPOSE 1883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
