# syntax=docker/dockerfile:1
#
# tagcache image: built on the Rust image, run on slim Debian as a non-root user.
#
#   docker build -t tagcache .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -e TAGCACHE_UPSTREAM=api.internal:3000 -e REDIS_URL=redis://redis:6379/0 \
#     -e TAGCACHE_ADMIN_TOKEN="$(openssl rand -hex 32)" tagcache
#
# The default config is conf/tagcache.container.yaml (addresses and secrets
# from the environment); mount your own over /etc/tagcache/tagcache.yaml.
# docker-compose.yml runs it with Redis and the demo API.

# Base images pinned by version; both Debian 13, so the binary finds the glibc
# it was linked against. Bump them together.
ARG RUST_IMAGE=rust:1.95.0-trixie
ARG RUNTIME_IMAGE=debian:13.1-slim

FROM ${RUST_IMAGE} AS build
# cmake: pingora's zlib-ng build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# A release binary without debug info and symbols (Cargo.toml keeps debug = 1
# for profiling outside the image).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

# Dependencies first, in a layer of their own: stub sources for every target
# the manifest names, then a build that compiles only the dependencies. The
# layer is reused until Cargo.toml or Cargo.lock change. The demo API is an
# example, so it also needs the dev-dependencies: the stub builds them too.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(awk '/^\[\[bench\]\]/ { want = 1; next } want && $1 == "name" { gsub(/"/, "", $3); print $3; want = 0 }' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; \
    done \
 && echo 'fn main() {}' > examples/demo_api.rs \
 && cargo build --release --locked --bin tagcache --example demo_api \
 && rm -rf src benches examples

# The real sources. touch: COPY keeps the files' own times, which may be older
# than the stubs', and cargo rebuilds by time.
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin tagcache \
 && mkdir -p /out \
 && cp target/release/tagcache /out/ \
 && if [ -f examples/demo_api.rs ]; then \
      cargo build --release --locked --example demo_api \
      && cp target/release/examples/demo_api /out/; \
    fi

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tagcache \
 && mkdir -p /etc/tagcache
# tagcache, and the demo API (docker-compose.yml) when the build has it.
COPY --from=build /out/ /usr/local/bin/
COPY conf/tagcache.container.yaml /etc/tagcache/tagcache.yaml
ENV TAGCACHE_LISTEN=0.0.0.0:8080 \
    TAGCACHE_ADMIN_LISTEN=0.0.0.0:9090
USER tagcache:tagcache
EXPOSE 8080 9090
# SIGTERM: stop accepting, finish requests in flight for server.grace_period
# (10 s by default), then exit; give `docker stop -t` a little more than that.
STOPSIGNAL SIGTERM
# `tagcache health` asks the admin listener (GET /health on 127.0.0.1:9090,
# or TAGCACHE_ADMIN_URL): 0 when it answers "ok" or "degraded" (Redis down,
# still serving), 1 otherwise; no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/usr/local/bin/tagcache", "health"]
ENTRYPOINT ["/usr/local/bin/tagcache"]
CMD ["run", "-c", "/etc/tagcache/tagcache.yaml"]
