#!/usr/bin/env bash
# Installs what the netns tests, the demo and the benchmarks need.
#
# Idempotent: when every tool is already there it does nothing (no apt-get
# update). Needs root to install (apt-get, Debian/Ubuntu).
#
# Rust: the toolchain (cargo, rustc, rustfmt, clippy) comes from rustup,
# which cannot be fetched from this workplace; the machine must already
# have it. When cargo is missing this script says so and exits 1.
set -euo pipefail

# Debian package -> a command (or file) that proves it is installed.
declare -A PKGS=(
    [iproute2]=ip
    [iputils-ping]=ping
    [socat]=socat
    [netcat-openbsd]=nc
    [tshark]=tshark
    [tcpdump]=tcpdump
    [ethtool]=ethtool
    [python3]=python3
    [iperf3]=iperf3
    [nftables]=nft
    [hping3]=hping3
    [procps]=pkill
    [curl]=curl
    [wrk]=wrk
)

# sbin directories are not always on a non-root PATH.
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for pkg in "${!PKGS[@]}"; do
    if ! command -v "${PKGS[$pkg]}" >/dev/null 2>&1; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all tools present"
else
    echo "install-deps: missing: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: need root to install them (sudo $0)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: no apt-get on this machine; install by hand: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture: no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'MSG'
install-deps: cargo not found.
  The Rust toolchain (cargo, rustc, rustfmt, clippy) is installed with rustup,
  which cannot be fetched here; this machine must already have it
  (usually in ~/.cargo/bin). Install rustup's stable toolchain and re-run.
MSG
    exit 1
fi
echo "install-deps: $(cargo --version)"
