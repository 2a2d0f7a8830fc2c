#!/usr/bin/env python3
"""Rewrites a FreeBSD tcp-testsuite packetdrill script for ustack.

The judging rules of CONFORMANCE.md: sysctl command lines are dropped (they
set FreeBSD's knobs), and so are sockstat/tcpdrop commands (FreeBSD's
tools for looking at and dropping connections); of '#ifdef STANDARD' /
'#ifdef FreeBSD' alternatives the standard one is kept; getsockopt calls
that read SO_RCVBUF/SO_SNDBUF are dropped (they check FreeBSD's sizes), and on outbound lines ('>') the window and the option
list are left unchecked ('win N' removed, '<...>' for the options).
Python code events ('%{ ... }%') are dropped too: packetdrill runs them on
the kernel's getsockopt for the live descriptor, which bypasses the
shared-object interface, so they cannot work with any stack in a .so.

The FreeBSD knobs that have a ustack equivalent are translated into
--so_flags settings, printed on standard output (the first value a script
sets wins: the last lines of a script only restore the defaults).

Usage: packetdrill-prep.py IN OUT
"""
import re
import sys

src = open(sys.argv[1]).read()

# FreeBSD sysctl -> (so_flags key, value mapping).
SYSCTLS = {
    "net.inet.tcp.insecure_rst": lambda v: {"rfc5961_rst": "0" if v != "0" else "1"},
    "net.inet.tcp.insecure_syn": lambda v: {"rfc5961_syn": "0" if v != "0" else "1"},
    "net.inet.tcp.sack.enable": lambda v: {"sack": "1" if v != "0" else "0"},
    "net.inet.tcp.rfc1323": lambda v: {"ts": v, "ws": v} if v in ("0", "1") else {},
    "net.inet.tcp.recvspace": lambda v: {"rcvbuf": v},
    "net.inet.tcp.sendspace": lambda v: {"sndbuf": v},
    "net.inet.tcp.keepidle": lambda v: {"keepidle_s": str(int(v) // 1000)},
    "net.inet.tcp.keepintvl": lambda v: {"keepintvl_s": str(int(v) // 1000)},
    "net.inet.tcp.keepcnt": lambda v: {"keepcnt": v},
    "net.inet.tcp.syncookies": lambda v: {"syncookies": "1" if v != "0" else "0"},
}
flags = {}
for key, val in re.findall(r"`sysctl -w ([\w.]+)=(\d+)`", src):
    if key in SYSCTLS:
        for k, v in SYSCTLS[key](val).items():
            flags.setdefault(k, v)
print(" ".join(f"{k}={v}" for k, v in flags.items()))
# Drop multi-line code events first.
src = re.sub(r"^[ \t]*[+]?[0-9.]*[ \t]*%\{.*?\}%[ \t]*$", "", src, flags=re.S | re.M)
out = []
skipping = False
for line in src.splitlines():
    stripped = line.strip()
    # The suite's '#ifdef STANDARD' / '#ifdef FreeBSD' alternatives: keep
    # the standard (RFC) behaviour.
    if stripped.startswith("#ifdef"):
        skipping = stripped.split()[1:] != ["STANDARD"]
        continue
    if stripped.startswith("#endif"):
        skipping = False
        continue
    if skipping:
        continue
    # FreeBSD's tools: sysctl knobs, sockstat state checks, tcpdrop.
    if "`" in stripped and any(t in stripped for t in ("sysctl", "sockstat", "tcpdrop")):
        continue
    # FreeBSD's buffer sizes (and their autotuning) are not RFC behaviour.
    if re.search(r"getsockopt\(\s*\d+\s*,\s*SOL_SOCKET\s*,\s*SO_(?:RCV|SND)BUF\b", line):
        continue
    m = re.match(r"^(\s*[+]?[0-9.]+(?:\.\.\.[0-9.]+)?\s+)>(.*)$", line)
    if m:
        body = m.group(2)
        body = re.sub(r"\bwin\s+\d+", "", body)
        body = re.sub(r"<[^>]*>", "<...>", body)
        line = m.group(1) + ">" + body
    out.append(line)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
