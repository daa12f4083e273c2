# hakeeper's image: `docker build -t hakeeper .`
#
# Stage 1 builds the release binary with the same command CI builds it with (.ci/run checks
# that the two agree). Stage 2 is a distroless equivalent assembled from stage 1: the binary,
# the C libraries it links (nothing else of the builder's system), CA certificates, and a
# passwd entry for the non-root user 65532. No shell, no package manager.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/hakeeper /rootfs/usr/local/bin/hakeeper
# The shared libraries the binary needs (and the loader), copied with their paths.
RUN ldd /rootfs/usr/local/bin/hakeeper \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
    | xargs -r cp --parents -L -t /rootfs \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'nonroot:x:65532:\n' > /rootfs/etc/group \
 && install -d -m 1777 /rootfs/tmp

FROM scratch
# VERSION is Cargo.toml's version; SOURCE_URL is where the sources are published, e.g.
# `docker build --build-arg SOURCE_URL=https://... -t hakeeper .`
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="hakeeper" \
      org.opencontainers.image.description="Kubernetes-native high-availability sidecar and operator for stateful stream processors" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}"
COPY --from=builder /rootfs /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hakeeper"]
