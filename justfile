# Thin aliases for `cargo xtask`, which needs nothing but cargo.

# Build the page and serve it at http://127.0.0.1:8080
run *ARGS:
    cargo xtask run {{ARGS}}

# Every check and test, browser tests included
test *ARGS:
    cargo xtask test {{ARGS}}

# Build the page into web/dist
build:
    cargo xtask build

# Kernel benchmarks (Markdown tables for docs/benchmarks.md)
bench:
    cargo xtask bench

# Put a release relay under load: light peers over TCP or WebRTC (docs/benchmarks.md, "Relay under load")
load *ARGS:
    cargo build --release -p tabswarm-relay -p tabswarm-loadgen
    target/release/tabswarm-loadgen run --relay-bin target/release/tabswarm-relay {{ARGS}}
