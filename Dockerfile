# Both services from one build. Targets: `discount` and `catalog`.
#   docker build --target discount -t ecommerce/discount .
#   docker build --target catalog  -t ecommerce/catalog .
# No protoc is needed: the proto is compiled by protox, in Rust.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out/keys \
    && cp target/release/discount target/release/catalog /out/

# distroless: no shell, no package manager; glibc matches the trixie build stage. The
# healthcheck subcommands stand in for curl. /keys is created owned by the non-root user,
# so a fresh named volume mounted there is writable for `discount gen-keys`.
FROM gcr.io/distroless/cc-debian13:nonroot AS discount
COPY --from=build /out/discount /usr/local/bin/discount
COPY --from=build --chown=65532:65532 /out/keys /keys
ENV KEYS_DIR=/keys LOG_FORMAT=json
USER 65532:65532
# 11443 gRPC over TLS; 11444 plaintext gRPC health (probes); 11445 metrics.
EXPOSE 11443 11444 11445
ENTRYPOINT ["/usr/local/bin/discount"]
CMD ["11443", "--health-listen", "0.0.0.0:11444", "--metrics-listen", "0.0.0.0:11445"]

FROM gcr.io/distroless/cc-debian13:nonroot AS catalog
COPY --from=build /out/catalog /usr/local/bin/catalog
COPY --from=build --chown=65532:65532 /out/keys /keys
ENV KEYS_DIR=/keys LOG_FORMAT=json
USER 65532:65532
EXPOSE 11080
ENTRYPOINT ["/usr/local/bin/catalog"]
CMD ["11080"]
