"""Push and pull of 64 MiB to and from 4 hosts, on loopback and at 50 ms RTT.

apssh push / pull next to OpenSSH's `scp` and `sftp -b` (one process per host, the
4 run at once; scp speaks the SFTP protocol since OpenSSH 9.0), parallel-ssh's
`copy_file` / `copy_remote_file` (the PyPI package), and a minimal asyncssh script
with the server's largest block (255 KiB) and max_requests=32 (the floor of an
asyncssh-based tool), with asyncssh's default cipher and with AES-GCM first (issue
23's reference client). Each case ends with one line: apssh / scp (paired rounds) and
the client CPU per MiB moved (user + system of the client's processes, every host's
copy counted) of apssh, scp and the reference client.

Before each run the destination is removed (untimed); after it, every copy is checked
to hold 64 MiB (a tool that misses one fails). `scp (AES-GCM)` is scp with
`-c aes128-gcm@openssh.com`, apssh's cipher (scp's default is chacha20-poly1305).
Every run also records the CPU the 4 containers used meanwhile (sshd and sftp-server,
from their cgroups) and the CPU of the relays between client and servers (Docker's
docker-proxy of each published port, the delay proxy at 50 ms RTT): the work no client
can avoid on this machine (benchmarks/floors.py); report.py turns it into a floor.
Writes benchmarks/results/raw/transfer.json.
Run: `python benchmarks/bench_transfer.py [MiB]`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
from floors import ContainerCpu, ProcessCpu, cores, docker_proxy_pids
from harness import Fleet, HostSpec, Row, Tool, paired_ratio, paired_runs, which

HOSTS = 4
AES_GCM = "aes128-gcm@openssh.com"
SCP_AES = "scp (AES-GCM)"  # the cipher apssh prefers: shows the cipher's share of scp's time
REMOTE = "/tmp/apssh-bench-blob"  # what the tools push to
SOURCE = "/tmp/apssh-bench-source"  # what they pull


def on_containers(fleet: Fleet, hosts: list[HostSpec], cmd: str) -> list[str]:
    def one(host: HostSpec) -> str:
        rc, out = fleet.top.exec(fleet.container_of(host), cmd)
        return out.strip() if rc == 0 else f"rc={rc}"

    with ThreadPoolExecutor(len(hosts)) as pool:
        return list(pool.map(one, hosts))


def push_tools(
    fleet: Fleet,
    hosts: list[HostSpec],
    blob: Path,
    work: Path,
    size: int,
    meters: dict[str, Callable[[], float | None]],
) -> list[Tool]:
    inventory = fleet.inventory(work / "inventory.toml", {"t": hosts})
    config = fleet.ssh_config(work / "ssh_config", hosts)
    spec = harness.hosts_json(fleet, work / "hosts.json", hosts)
    batch = work / "push.batch"
    batch.write_text(f"put {blob} {REMOTE}\n")

    def prepare() -> None:
        on_containers(fleet, hosts, f"rm -f {REMOTE}")

    def check() -> str | None:
        sizes = on_containers(fleet, hosts, f"stat -c %s {REMOTE}")
        wrong = [f"{h.name}: {s}" for h, s in zip(hosts, sizes, strict=True) if s != str(size)]
        return f"wrong copies: {', '.join(wrong)}" if wrong else None

    apssh = which("apssh") or "apssh"
    tools = [
        Tool(
            "apssh push",
            [
                [
                    apssh,
                    "push",
                    "-i",
                    str(inventory),
                    "-g",
                    "t",
                    "-w",
                    str(HOSTS),
                    "-q",
                    str(blob),
                    REMOTE,
                ]
            ],
        ),
        Tool(
            "scp",
            [["scp", "-q", "-F", str(config), str(blob), f"{h.name}:{REMOTE}"] for h in hosts],
        ),
        Tool(
            SCP_AES,
            [
                ["scp", "-q", "-c", AES_GCM, "-F", str(config), str(blob), f"{h.name}:{REMOTE}"]
                for h in hosts
            ],
        ),
        Tool(
            "sftp -b", [["sftp", "-q", "-F", str(config), "-b", str(batch), h.name] for h in hosts]
        ),
        Tool(
            "asyncssh script (255 KiB x 32)",
            [
                [
                    sys.executable,
                    harness.peer_script("asyncssh_min.py"),
                    str(spec),
                    "push",
                    str(blob),
                    REMOTE,
                ]
            ],
        ),
    ]
    tools.append(reference_client(spec, "push", str(blob), REMOTE))
    if _has_pssh():
        tools.append(
            Tool(
                "parallel-ssh copy_file",
                [
                    [
                        sys.executable,
                        harness.peer_script("pssh_lib.py"),
                        str(spec),
                        "push",
                        str(blob),
                        REMOTE,
                    ]
                ],
            )
        )
    for tool in tools:
        tool.prepare, tool.check, tool.meters = prepare, check, meters
    return tools


def pull_tools(
    fleet: Fleet,
    hosts: list[HostSpec],
    work: Path,
    size: int,
    meters: dict[str, Callable[[], float | None]],
) -> list[Tool]:
    inventory = fleet.inventory(work / "inventory.toml", {"t": hosts})
    config = fleet.ssh_config(work / "ssh_config", hosts)
    spec = harness.hosts_json(fleet, work / "hosts.json", hosts)
    out = work / "pulled"
    name = Path(SOURCE).name

    def prepare() -> None:
        shutil.rmtree(out, ignore_errors=True)
        for host in hosts:
            (out / host.name).mkdir(parents=True)

    def check() -> str | None:
        wrong = []
        for host in hosts:
            copy = out / host.name / name
            if not copy.is_file() or copy.stat().st_size != size:
                wrong.append(host.name)
        return f"missing or wrong copies: {', '.join(wrong)}" if wrong else None

    apssh = which("apssh") or "apssh"
    tools = [
        # pull writes LOCALDIR/<host>/NAME
        Tool(
            "apssh pull",
            [
                [
                    apssh,
                    "pull",
                    "-i",
                    str(inventory),
                    "-g",
                    "t",
                    "-w",
                    str(HOSTS),
                    "-q",
                    SOURCE,
                    str(out),
                ]
            ],
        ),
        Tool(
            "scp",
            [
                ["scp", "-q", "-F", str(config), f"{h.name}:{SOURCE}", str(out / h.name / name)]
                for h in hosts
            ],
        ),
        Tool(
            SCP_AES,
            [
                [
                    "scp",
                    "-q",
                    "-c",
                    AES_GCM,
                    "-F",
                    str(config),
                    f"{h.name}:{SOURCE}",
                    str(out / h.name / name),
                ]
                for h in hosts
            ],
        ),
    ]
    sftp_argvs = []
    for host in hosts:
        batch = work / f"pull-{host.name}.batch"
        batch.write_text(f"get {SOURCE} {out / host.name / name}\n")
        sftp_argvs.append(["sftp", "-q", "-F", str(config), "-b", str(batch), host.name])
    tools.append(Tool("sftp -b", sftp_argvs))
    tools.append(
        Tool(
            "asyncssh script (255 KiB x 32)",
            [
                [
                    sys.executable,
                    harness.peer_script("asyncssh_min.py"),
                    str(spec),
                    "pull",
                    SOURCE,
                    str(out),
                ]
            ],
        )
    )
    tools.append(reference_client(spec, "pull", SOURCE, str(out)))
    if _has_pssh():
        tools.append(
            Tool(
                "parallel-ssh copy_remote_file",
                [
                    [
                        sys.executable,
                        harness.peer_script("pssh_lib.py"),
                        str(spec),
                        "pull",
                        SOURCE,
                        str(out),
                    ]
                ],
            )
        )
    for tool in tools:
        tool.prepare, tool.check, tool.meters = prepare, check, meters
    return tools


REFERENCE = "asyncssh script, AES-GCM (255 KiB x 32)"


def reference_client(spec: Path, kind: str, source: str, target: str) -> Tool:
    """issue 23's reference: the fastest asyncssh client we could write (AES-GCM first,
    the server's 255 KiB blocks, 32 requests in flight), asyncssh's own put/get."""
    return Tool(
        REFERENCE,
        [[sys.executable, harness.peer_script("asyncssh_min.py"), str(spec), kind, source, target]],
        env={"ASYNCSSH_CIPHERS": ",".join((AES_GCM, "aes256-gcm@openssh.com", "aes128-ctr"))},
    )


def summary(rows: list[Row], case: str, mib: int, hosts: int) -> None:
    """One line per case: apssh / scp (paired), and each one's client CPU per MiB moved."""
    apssh = next((row for row in rows if row.tool.startswith("apssh")), None)
    if apssh is None:
        return
    value = paired_ratio(rows, apssh.tool, "scp")
    per_mib = {
        row.tool: 1000 * statistics.median(row.cpus) / (mib * hosts)
        for row in rows
        if row.cpus and not row.error
    }
    named = [tool for tool in (apssh.tool, "scp", REFERENCE) if tool in per_mib]
    shown = ", ".join(f"{tool} {per_mib[tool]:.2f} ms" for tool in named)
    ratio = "n/a" if value is None else f"{value:.2f}x"
    print(f"    {case}: apssh / scp {ratio}; client CPU per MiB: {shown}", flush=True)


def _has_pssh() -> bool:
    try:
        import pssh.clients  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else (16 if harness.quick() else 64)
    size = mib * 1024 * 1024
    rows = []
    with Fleet(direct=HOSTS) as fleet:
        blob = fleet.dir / "blob"
        blob.write_bytes(os.urandom(size))
        for host in fleet.direct_hosts(HOSTS, delayed=False):
            rc, out = fleet.top.exec(
                fleet.container_of(host), f"head -c {size} /dev/urandom > {SOURCE}"
            )
            assert rc == 0, out
        # the servers' side (sshd, sftp-server) of every run, from the containers' cgroups,
        # and the relays that are neither client nor server: docker-proxy, the delay proxy
        served = fleet.direct_hosts(HOSTS, delayed=False)
        servers = ContainerCpu.of(fleet.container_ids(served))
        proxies = docker_proxy_pids(fleet.container_of(host).port for host in served)
        assert fleet.proxy is not None
        relays = ProcessCpu((*proxies, fleet.proxy.proc.pid))
        meters: dict[str, Callable[[], float | None]] = {}
        if servers.problem:
            print(f"server CPU not measured: {servers.problem}", flush=True)
        else:
            meters["server_cpus"] = servers.read
            print(f"server CPU: {servers.source}", flush=True)
        meters["relay_cpus"] = relays.read
        print(f"relay CPU: {len(proxies)} docker-proxy and the delay proxy", flush=True)
        for delayed, where in ((False, "loopback"), (True, "50 ms RTT")):
            hosts = fleet.direct_hosts(HOSTS, delayed=delayed, prefix="t")
            rounds = 2 if harness.quick() else (5 if not delayed else 3)
            tag = "rtt" if delayed else "lo"
            print(f"{mib} MiB to and from {HOSTS} hosts, {where}", flush=True)
            for kind in ("push", "pull"):
                work = fleet.dir / f"{kind}-{tag}"
                work.mkdir()
                tools = (
                    push_tools(fleet, hosts, blob, work, size, meters)
                    if kind == "push"
                    else pull_tools(fleet, hosts, work, size, meters)
                )
                case_rows = paired_runs(f"{kind} {where}", tools, rounds)
                summary(case_rows, f"{kind} {where}", mib, HOSTS)
                rows += case_rows
            if delayed:
                # one host alone: the window of one SFTP session (2 MiB in OpenSSH's sshd)
                # bounds a push to about 2 MiB per round trip, where the CPU does not
                work = fleet.dir / "push-rtt-1"
                work.mkdir()
                print(f"{mib} MiB to 1 host, {where}", flush=True)
                tools = push_tools(fleet, hosts[:1], blob, work, size, meters)
                case_rows = paired_runs(f"push {where}, 1 host", tools, rounds)
                summary(case_rows, f"push {where}, 1 host", mib, 1)
                rows += case_rows
    harness.save(
        "transfer",
        {
            "title": f"{mib} MiB to/from {HOSTS} hosts",
            "mib": mib,
            "hosts": HOSTS,
            "rows": rows,
            # rows' extra.server_cpus: CPU seconds the 4 containers used in each run
            # rows' extra.relay_cpus: CPU of the docker-proxy processes of the 4 published
            # ports and of the delay proxy (relaying bytes at 50 ms RTT) in each run
            "server_cpu": {"source": servers.source, "problem": servers.problem},
            "relay_cpu": {
                "source": relays.source,
                "docker_proxies": len(proxies),
                "delay_proxy": True,
            },
            "cores": cores(),
        },
    )


if __name__ == "__main__":
    main()
