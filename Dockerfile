# syntax=docker/dockerfile:1
#
# duplex in a distroless image: one static binary, run as nonroot.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t duplex .
#   docker run --rm -p 8088:8088 duplex
#
# What the runtime stage relies on (a CGO_ENABLED=0 build is statically
# linked; the binary alone, as a non-root user, in an empty directory, with
# only PORT set, serves the page, the socket and /healthz; "duplex
# healthcheck" exits 0 while it is up; SIGTERM closes clients with 1001 and
# exits 0) is checked by e2e/binary_test.go, which builds with the same
# command as below.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/duplex .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/duplex /duplex
ENV PORT=8088
EXPOSE 8088
USER nonroot
# The image has no shell or curl: the binary probes its own /healthz on PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/duplex", "healthcheck"]
ENTRYPOINT ["/duplex"]
