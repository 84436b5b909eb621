# The compactor Lambda as a container image (`make lambdas` copies this file and the stripped
# binary into dist/compactor/; build there with `docker build -t strata-compactor .`).
# The binary speaks the Lambda runtime API itself (lambda_runtime), so any base image with a
# glibc at least as new as the build machine's works; Debian 12 matches this project's builds.
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY strata-compactor-lambda /usr/local/bin/strata-compactor-lambda
ENTRYPOINT ["/usr/local/bin/strata-compactor-lambda"]
