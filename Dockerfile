# syntax=docker/dockerfile:1
# One image for every production subcommand (manager, webhookserver, worker,
# migrate, deadletters, report): the entrypoint is the binary, the subcommand
# is the first arg. The dev tooling (dev, sandbox, and through them the test
# environment and the API emulators) is left out by -tags production.
#
#   docker build -t ghcr.io/kommo-unisender/kommo-unisender:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 ...

# The builder runs on the build machine's platform and cross-compiles: a
# static Go binary needs no emulation for other architectures.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src

# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
# CGO off: a static binary for a base image without libc. -trimpath keeps
# build-machine paths out of the binary (and reproducible across machines).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -tags production -trimpath -ldflags="-s -w" -o /out/kommo-unisender .

# distroless/static: CA certificates, tzdata and /etc/passwd with the
# nonroot user, nothing else (no shell, no package manager).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/kommo-unisender/kommo-unisender" \
      org.opencontainers.image.description="Kommo to Unisender contact sync operator"
COPY --from=builder /out/kommo-unisender /kommo-unisender
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/kommo-unisender"]
