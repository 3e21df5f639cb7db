# Multi-stage build: compile on the Rust image, run on slim Debian as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin tagcache

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tagcache \
 && mkdir -p /etc/tagcache
COPY --from=build /src/target/release/tagcache /usr/local/bin/tagcache
COPY conf/tagcache.example.yaml /etc/tagcache/tagcache.yaml
USER tagcache
EXPOSE 8080 9090
# Mount your config at /etc/tagcache/tagcache.yaml; pass secrets as environment variables.
ENTRYPOINT ["/usr/local/bin/tagcache"]
CMD ["run", "-c", "/etc/tagcache/tagcache.yaml"]
