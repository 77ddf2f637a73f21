"""The process behind a local TCP port, and its resident memory, read from /proc (Linux).

Used by the multi-user layer to watch the backend's memory while it serves many runs. Only
a listener on this machine can be found: ``/proc/net/tcp`` and ``/proc/net/tcp6`` give the
LISTEN socket's inode for the port, and the process is the one holding ``socket:[inode]``
among its open file descriptors. A process of another user (or in another PID namespace,
e.g. behind docker's port proxy) does not show its descriptors, so it is not found: the
caller gets None and says why, rather than measuring the wrong process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from goldenpath.core.errors import ProcessGone

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in the kernel's st column


@dataclass(frozen=True)
class Listener:
    """The processes holding the LISTEN socket of a port (several after a fork, e.g. prefork workers)."""

    port: int
    inode: int
    pids: tuple[int, ...]

    def rss_kib(self) -> int:
        """Resident memory of all its processes together, KiB; ProcessGone when none is left."""
        total, alive = 0, 0
        for pid in self.pids:
            rss = vm_rss_kib(pid)
            if rss is not None:
                total, alive = total + rss, alive + 1
        if not alive:
            raise ProcessGone(f"the process(es) {', '.join(map(str, self.pids))} listening on port "
                              f"{self.port} have exited")  # fmt: skip
        return total

    def describe(self) -> str:
        names = ", ".join(f"{pid} ({command_line(pid) or '?'})" for pid in self.pids)
        return f"port {self.port}: pid {names}"



def listen_inodes(port: int, proc: Path = PROC) -> set[int]:
    """Inodes of the LISTEN sockets on ``port``, any local address, IPv4 and IPv6."""
    found: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6 in this kernel, or no /proc at all
        found.update(_inodes(lines, port))
    return found


def _inodes(lines: Iterable[str], port: int) -> Iterable[int]:
    # Columns: sl local_address rem_address st ... uid timeout inode; the port is hex after the colon.
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        _, _, hex_port = fields[1].rpartition(":")
        if int(hex_port, 16) == port and fields[9] != "0":
            yield int(fields[9])


def pids_holding(inodes: set[int], proc: Path = PROC) -> tuple[int, ...]:
    """Processes with an open descriptor on one of the sockets; those we may not look into are skipped."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        if _links(entry / "fd") & wanted:
            holders.append(int(entry.name))
    return tuple(sorted(holders))


def _links(fd_dir: Path) -> set[str]:
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return set()  # another user's process, or it exited while we looked
    links = set()
    for fd in fds:
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue  # closed between the listing and the read
    return links


def find_listener(port: int, proc: Path = PROC) -> Listener | None:
    """The local processes listening on ``port``; None when there is none we can see."""
    inodes = listen_inodes(port, proc)
    if not inodes:
        return None
    pids = pids_holding(inodes, proc)
    if not pids:
        return None
    return Listener(port, min(inodes), pids)


def vm_rss_kib(pid: int, proc: Path = PROC) -> int | None:
    """VmRSS of a process in KiB; None when it has exited (or is a zombie without memory)."""
    try:
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def argv(pid: int, proc: Path = PROC) -> list[str] | None:
    """A process's arguments as it was started; None when it has exited."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def command_line(pid: int, proc: Path = PROC) -> str | None:
    return " ".join(argv(pid, proc) or []) or None
