# Ferry hub in a container: docker build -t ferry . && \
#   docker run -d -p 7878:7878 -v ferry-data:/data ferry
# The owner's one-time invite is in the log (docker logs) and in the volume
# (/data/owner-invite). Clients run `ferry join LINK`. A bind-mounted /data
# must belong to uid 10001 (chown 10001 DIR).

FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferry \
 && cp target/release/ferry /ferry

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home ferry \
 && mkdir /data && chown 10001:10001 /data && chmod 700 /data
COPY --from=build /ferry /usr/local/bin/ferry
USER 10001:10001
# Client state for `docker exec … ferry invite` and the health check (which
# pins and registers nothing), kept in the volume across restarts.
ENV FERRY_HOME=/data/client
VOLUME ["/data"]
EXPOSE 7878
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["ferry", "--hub", "127.0.0.1:7878", "status"]
ENTRYPOINT ["ferry"]
CMD ["serve", "--listen", "0.0.0.0:7878", "--data", "/data"]
