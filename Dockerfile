# One image for all four programs; the command picks one:
#   docker run IMAGE scheduler-web | scheduler-beat | scheduler-worker | scheduler-ctl migrate
# Build stage: the Swift toolchain and the C libraries' headers.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libpq-dev librabbitmq-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so code changes do not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# Each program by name: a plain `swift build` would also build the tests' support library.
# Without debug information: it would double the programs' size; a crash's backtrace still
# names the functions.
RUN for program in scheduler-web scheduler-beat scheduler-worker scheduler-ctl; do \
         swift build -c release --static-swift-stdlib -debug-info-format none --product "$program" || exit 1; \
       done \
    && mkdir -p /out \
    && for program in scheduler-web scheduler-beat scheduler-worker scheduler-ctl; do \
         cp "$(swift build -c release --show-bin-path)/$program" /out/; \
       done \
    # The programs' resources (the OpenAPI document) live in bundles beside them.
    && cp -R "$(swift build -c release --show-bin-path)"/*.resources /out/

# Run stage: Debian slim with only the runtime libraries the programs link.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 librabbitmq4 libcurl4 ca-certificates tzdata libstdc++6 zlib1g libjs-chart.js \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin scheduler
COPY --from=build /out/ /usr/local/bin/
COPY migrations /app/migrations
COPY rabbitmq /app/rabbitmq
WORKDIR /app
ENV SCHEDULER_MIGRATIONS=/app/migrations \
    PORT=8000
USER 10001
EXPOSE 8000 9101 9102
# Ready when the program's /readyz answers 200: web's on PORT by default; beat and worker
# set PROBE_URL to theirs (http://127.0.0.1:9101/readyz, :9102), as compose does.
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 CMD ["scheduler-ctl", "probe"]
CMD ["scheduler-web"]
