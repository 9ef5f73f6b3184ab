# syntax=docker/dockerfile:1
#
# triage-bot, production image: the release binary without the demo and the emulators, on a
# distroless runtime (no shell, no package manager), running as a non-root user, with the SQLite
# database on the /data volume.
#
#   docker build -t triage-bot .
#   docker run -d --name triage-bot --env-file .env -p 8080:8080 \
#     -v triage-bot-data:/data --stop-timeout 90 triage-bot
#
# docs/operations.md covers configuration, upgrades, backups and stopping.

# The Rust release named by `rust-version` in Cargo.toml (tests/checks/packaging.rs keeps the two
# in step). Debian 13 on both sides, so the binary and the runtime share one C library.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-trixie AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target directory before the mount goes away.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin triage-bot \
    && install -D -m 0755 target/release/triage-bot /out/triage-bot
# The health probe. The runtime image has no shell, curl or wget, and triage-bot has no probe
# subcommand, so a std-only Rust program (deploy/healthcheck.rs) is built here with plain rustc.
RUN rustc --edition 2024 -C opt-level=s -C strip=symbols \
        -o /out/healthcheck deploy/healthcheck.rs \
    && install -d /out/data

# cc: glibc, libgcc and CA certificates — what a Rust binary needs. `nonroot` runs as uid 65532.
FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=build /out/triage-bot /out/healthcheck /usr/local/bin/
# An empty /data owned by the service user: a new named volume starts as a copy of it, so the
# database can be created there.
COPY --from=build --chown=65532:65532 /out/data /data
ENV DATABASE_URL="sqlite:///data/triage-bot.db?mode=rwc" \
    HTTP_BIND="0.0.0.0:8080" \
    LOG_FORMAT="json"
VOLUME ["/data"]
# The working directory is the volume too, so a relative DATABASE_URL (.env.example's
# `sqlite://triage-bot.db?mode=rwc`) also lands there.
WORKDIR /data
EXPOSE 8080
USER 65532:65532
# SIGTERM is what `docker stop` sends; give the container more time than SHUTDOWN_GRACE_SECS
# (`docker stop -t`, `--stop-timeout`, compose's stop_grace_period) or it is killed mid-batch.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "/healthz"]
ENTRYPOINT ["/usr/local/bin/triage-bot"]
CMD ["serve"]
