# syntax=docker/dockerfile:1
# Build: docker build -t license-facade .
# Run:   docker run -p 8080:8080 -p 50051:50051 license-facade serve --sandbox

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a change to our code does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY migrations ./migrations
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/deps/license_facade* target/release/license-facade*
COPY src ./src
RUN cargo build --release --locked \
    && cp target/release/license-facade /license-facade

FROM debian:bookworm-slim AS runtime
# CA certificates for https to BILLmanager; nothing else is needed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/license-facade --create-home license-facade
COPY --from=build /license-facade /usr/local/bin/license-facade
USER 10001
WORKDIR /var/lib/license-facade
ENV LICENSE_FACADE_HTTP_ADDR=0.0.0.0:8080 \
    LICENSE_FACADE_GRPC_ADDR=0.0.0.0:50051 \
    LICENSE_FACADE_LOG_FORMAT=json
EXPOSE 8080 50051
# The binary asks its own /readyz (LICENSE_FACADE_HTTP_ADDR, 0.0.0.0 read as loopback):
# no shell or curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/license-facade", "healthcheck"]
# SIGTERM starts the drain (readiness off, --drain-delay-ms, then at most
# --drain-timeout-secs); `docker stop -t 30` leaves room for the defaults.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/license-facade"]
CMD ["serve"]
