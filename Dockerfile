# uplift: one binary on Debian slim, running as the unprivileged user `uplift`.
#
#   docker build -t uplift .
#   docker run -p 8080:8080 -v uplift-data:/var/lib/uplift/data uplift
#
# Without UPLIFT_DATABASE_URL the service keeps an SQLite database (and, without a
# configured key, a generated signing secret) in /var/lib/uplift/data; mount a volume
# there to keep them. docker-compose.yml runs it on PostgreSQL instead.

# sea-orm 2 (sqlx 0.9) needs Rust 1.94 or newer.
ARG RUST_VERSION=1

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, built against stub sources, so that changing the code does not
# rebuild the ~400 crates below it. (The C parts, bundled SQLite, ring and zstd, only
# need the gcc that the slim Rust image already has.)
COPY Cargo.toml Cargo.lock ./
COPY entity/Cargo.toml entity/Cargo.toml
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src entity/src migration/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs entity/src/lib.rs migration/src/lib.rs \
    && cargo build --release --locked --bin uplift \
    && rm -rf src entity/src migration/src

# The real sources. COPY keeps the files' own modification times, which can be older
# than the stub build; touching the crate roots makes cargo rebuild the three
# workspace crates instead of reusing the stubs.
COPY src src
COPY entity/src entity/src
COPY migration/src migration/src
RUN touch src/main.rs src/lib.rs entity/src/lib.rs migration/src/lib.rs \
    && cargo build --release --locked --bin uplift \
    && install -m 0755 target/release/uplift /usr/local/bin/uplift

# ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: the system trust store (uplift's own TLS clients, reqwest and sqlx on
# rustls, carry the webpki roots built in; this is for anything else in the image).
# curl: the health check below (and compose's).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 uplift \
    && useradd --system --uid 10001 --gid uplift --home-dir /var/lib/uplift \
        --shell /usr/sbin/nologin uplift \
    && mkdir -p /var/lib/uplift/data \
    && chown -R uplift:uplift /var/lib/uplift \
    && chmod 0750 /var/lib/uplift/data

COPY --from=builder /usr/local/bin/uplift /usr/local/bin/uplift

USER uplift
# The default database (./data/uplift.db), the generated secret (./data/jwt-secret)
# and an optional ./uplift.toml are all relative to this directory.
WORKDIR /var/lib/uplift

ENV UPLIFT_LISTEN=0.0.0.0:8080
EXPOSE 8080

# /readyz answers 200 once the database is reachable (503 while it is not). The port
# here must match UPLIFT_LISTEN.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || exit 1

# actix-web stops on SIGTERM and lets in-flight requests finish for up to
# UPLIFT_SHUTDOWN_TIMEOUT_SECONDS (30 by default), longer than `docker stop`'s 10 s:
# use `docker stop -t 35` (docker-compose.yml sets stop_grace_period).
ENTRYPOINT ["uplift"]
CMD ["serve"]
