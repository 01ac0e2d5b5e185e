"""Assemble benchmarks/results/raw/*.json into the report: report.md, report.json, fanout.png.

Ratios are apssh / peer, the median over paired rounds (< 1: apssh is faster).
Each target of issue 13 gets a line: its measured value and whether it is met.
Run after the bench_*.py scripts (`nox -s bench` does): `python benchmarks/report.py`.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from floors import cpu_floor, paired_floor_ratio

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RAW = RESULTS / "raw"
SCENARIOS = ["startup", "fanout", "bastion", "transfer", "cpu", "recipe"]
IMPORT_ASYNCSSH = "python -c 'import asyncssh'"  # bench_startup.py's row
ASYNCSSH_SCRIPT = "asyncssh script"  # the asyncssh floor of bench_fanout.py and bench_cpu.py


def load() -> dict[str, dict[str, Any]]:
    found = {}
    for name in SCENARIOS:
        path = RAW / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def rows_of(data: dict[str, Any], case: str) -> dict[str, dict[str, Any]]:
    return {row["tool"]: row for row in data.get("rows", []) if row["case"] == case}


def median(row: dict[str, Any] | None, what: str = "walls") -> float | None:
    if not row or row.get("error") or not row.get(what):
        return None
    return float(statistics.median(row[what]))


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, what: str = "walls") -> float | None:
    """Median over rounds of a / b (rounds are paired by index)."""
    if not a or not b or a.get("error") or b.get("error"):
        return None
    pairs = [(x, y) for x, y in zip(a[what], b[what], strict=False) if y > 0]
    return float(statistics.median(x / y for x, y in pairs)) if pairs else None


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "-"}[ok]


def case_table(data: dict[str, Any], case: str, reference: str, cpu: bool = False) -> list[str]:
    rows = rows_of(data, case)
    ref = rows.get(reference)
    head = "| tool | median wall | apssh / tool |" + (" median CPU |" if cpu else "")
    lines = [head, "|---|---:|---:|" + ("---:|" if cpu else "")]
    for name, row in rows.items():
        if row.get("error"):
            lines.append(f"| {name} | failed: {row['error'][:120]} | |" + (" |" if cpu else ""))
            continue
        vs = "" if name == reference else times(ratio(ref, row))
        line = f"| {name} | {seconds(median(row))} | {vs} |"
        if cpu:
            line += f" {seconds(median(row, 'cpus'))} |"
        lines.append(line)
    return lines


def transfer_table(data: dict[str, Any], case: str, reference: str) -> list[str]:
    """case_table plus the CPU of the servers and relays in each tool's runs, and the
    floor it implies."""
    rows = rows_of(data, case)
    ref = rows.get(reference)
    ncores = transfer_cores(data)
    lines = [
        "| tool | median wall | apssh / tool | client CPU | client CPU per MiB | server CPU "
        "| relay CPU | floor | busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        if row.get("error"):
            lines.append(f"| {name} | failed: {row['error'][:120]} | | | | | | | |")
            continue
        vs = "" if name == reference else times(ratio(ref, row))
        servers, relays = metered(row, "server_cpus"), metered(row, "relay_cpus")
        unavoidable = unavoidable_cpus(row)
        floor = cpu_floor(statistics.median(unavoidable), ncores) if unavoidable else None
        # the share of the cores all three kept busy: well under 100%, the run waited
        # for something else than CPU (or other work on the machine had the cores)
        busy = [
            (cpu + other) / (ncores * wall)
            for cpu, other, wall in zip(row["cpus"], unavoidable, row["walls"], strict=False)
            if wall > 0
        ]
        lines.append(
            f"| {name} | {seconds(median(row))} | {vs} | {seconds(median(row, 'cpus'))} "
            f"| {per_mib(median(row, 'cpus'), data, case)} "
            f"| {seconds(statistics.median(servers) if servers else None)} "
            f"| {seconds(statistics.median(relays) if relays else None)} | {seconds(floor)} "
            f"| {percent(statistics.median(busy) if busy else None)} |"
        )
    return lines


def per_mib(cpu: float | None, transfer: dict[str, Any], case: str = "") -> str:
    """Client CPU per MiB moved (every host's copy counted), in milliseconds."""
    hosts = 1 if case.endswith(", 1 host") else transfer.get("hosts", 0)
    moved = transfer.get("mib", 0) * hosts
    return "n/a" if cpu is None or not moved else f"{1000 * cpu / moved:.2f} ms"


# issue 23's targets for transfers: apssh / (4 parallel scp), where and at most
TRANSFER_TARGETS = (("loopback", 1.0), ("50 ms RTT", 0.8))


def targets(found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of issue 13: what was measured, and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(
        scenario: str,
        measured: str,
        value: float | None,
        target: str,
        ok: bool | None,
        floor: dict[str, Any] | None = None,
    ) -> None:
        out.append(
            {
                "scenario": scenario,
                "measured": measured,
                "value": value,
                "target": target,
                "met": ok,
                "floor": floor,
            }
        )

    transfer = found.get("transfer")
    if transfer:
        for kind in ("push", "pull"):
            for where, bound in TRANSFER_TARGETS:
                rows = rows_of(transfer, f"{kind} {where}")
                apssh_row, scp_row = rows.get(f"apssh {kind}"), rows.get("scp")
                value = ratio(apssh_row, scp_row)
                add(
                    f"{kind} {transfer['mib']} MiB, {transfer['hosts']} hosts, {where}",
                    f"apssh {seconds(median(apssh_row))} "
                    f"({per_mib(median(apssh_row, 'cpus'), transfer)} CPU/MiB), "
                    f"scp {seconds(median(scp_row))} "
                    f"({per_mib(median(scp_row, 'cpus'), transfer)} CPU/MiB): "
                    f"apssh/scp {times(value)}",
                    value,
                    f"apssh/scp <= {bound}",
                    None if value is None else value <= bound,
                    transfer_floor(transfer, rows, f"apssh {kind}", bound),
                )
    fanout = found.get("fanout")
    if fanout:
        rows = rows_of(fanout, "1 hosts")
        value = ratio(rows.get("apssh"), rows.get("ssh"))
        add(
            "`true` on 1 host, 50 ms RTT",
            f"apssh {seconds(median(rows.get('apssh')))}, `ssh host true` "
            f"{seconds(median(rows.get('ssh')))}: {times(value)}",
            value,
            "apssh/ssh <= 1.0",
            None if value is None else value <= 1.0,
            one_host_floor(rows),
        )
        biggest = max(fanout.get("sizes", [0]))
        rows = rows_of(fanout, f"{biggest} hosts")
        peers = {
            name: ratio(rows.get("apssh"), row)
            for name, row in rows.items()
            if name not in ("apssh", ASYNCSSH_SCRIPT) and not row.get("error")  # peers, not floors
        }
        peers = {k: v for k, v in peers.items() if v is not None}
        if peers:
            best = max(peers, key=lambda k: peers[k])  # the peer closest to (or ahead of) apssh
            add(
                f"`true` on {biggest} hosts, 50 ms RTT",
                f"apssh {seconds(median(rows.get('apssh')))}, best peer {best} "
                f"{seconds(median(rows.get(best)))}: {times(peers[best])}",
                peers[best],
                "ahead of every peer (< 1.0)",
                peers[best] < 1.0,
            )
    cpu = found.get("cpu")
    if cpu:
        rows = rows_of(cpu, f"{cpu['hosts']} hosts")
        value = ratio(rows.get("apssh"), rows.get(ASYNCSSH_SCRIPT), "cpus")
        add(
            f"client CPU, `true` on {cpu['hosts']} hosts, loopback",
            f"apssh {seconds(median(rows.get('apssh'), 'cpus'))}, asyncssh script "
            f"{seconds(median(rows.get('asyncssh script'), 'cpus'))}: {times(value)}",
            value,
            "apssh/script <= 1.1",
            None if value is None else value <= 1.1,
        )
    bastion = found.get("bastion")
    if bastion:
        rows = rows_of(bastion, f"{bastion['hosts']} hosts")
        via, direct = rows.get("apssh via bastion"), rows.get("apssh direct")
        connections = (via or {}).get("extra", {}).get("bastion_connections", [])
        add(
            f"{bastion['hosts']} hosts through one bastion, 50 ms RTT: bastion connections",
            f"{connections} (one per run)",
            float(max(connections)) if connections else None,
            "exactly 1",
            bool(connections) and set(connections) == {1},
        )
        value = ratio(via, direct)
        add(
            f"{bastion['hosts']} hosts through one bastion, 50 ms RTT: wall time",
            f"via bastion {seconds(median(via))}, direct {seconds(median(direct))}: {times(value)}",
            value,
            "via/direct <= 1.2",
            None if value is None else value <= 1.2,
        )
    recipe = found.get("recipe")
    if recipe:
        out.extend(recipe_targets(recipe, found.get("startup")))
    startup = found.get("startup")
    if startup:
        rows = rows_of(startup, "start-up")
        value = median(rows.get("apssh --help"))
        add(
            "`apssh --help` start-up",
            f"{seconds(value)} (`python -c pass`: "
            f"{seconds(median(rows.get('python -c pass (floor)')))})",
            value,
            "(a figure, no target)",
            None,
        )
    return out


def metered(row: dict[str, Any] | None, name: str) -> list[float]:
    """A row's per-run meter (extra.server_cpus, extra.relay_cpus), when every run of it
    was measured: the values pair with the walls by index."""
    if not row or row.get("error"):
        return []
    values = (row.get("extra") or {}).get(name) or []
    return list(values) if len(values) == len(row.get("walls", [])) else []


def unavoidable_cpus(row: dict[str, Any] | None) -> list[float]:
    """Per run, the CPU no client could save: the servers' plus the relays' (docker-proxy,
    the delay proxy); the servers' alone when the relays were not measured."""
    servers = metered(row, "server_cpus")
    relays = metered(row, "relay_cpus") or [0.0] * len(servers)
    return [a + b for a, b in zip(servers, relays, strict=False)]


def transfer_cores(transfer: dict[str, Any]) -> int:
    return int(transfer.get("cores") or transfer.get("machine", {}).get("nproc") or 1)


def transfer_floor(
    transfer: dict[str, Any], rows: dict[str, dict[str, Any]], apssh: str, bound: float
) -> dict[str, Any]:
    """The wall time a client using no CPU could reach, against scp's: the servers' and
    relays' CPU of a run over the cores, for apssh's runs (its cipher) and scp's."""
    scp = rows.get("scp")
    ncores = transfer_cores(transfer)
    if not metered(scp, "server_cpus") and not metered(rows.get(apssh), "server_cpus"):
        problem = (transfer.get("server_cpu") or {}).get("problem") or "not in these results"
        return {"value": None, "text": f"server CPU not measured ({problem})"}
    parts, ratios = [], []
    for name in (apssh, "scp", "scp (AES-GCM)"):
        cpus = unavoidable_cpus(rows.get(name))
        value = paired_floor_ratio(cpus, (scp or {}).get("walls", []), ncores)
        if value is None:
            continue
        ratios.append(value)
        parts.append(f"{name} {times(value)} ({seconds(statistics.median(cpus))})")
    if not ratios:
        return {"value": None, "text": "scp failed: no floor"}
    lowest = min(ratios)
    reach = "out of reach here" if lowest > bound else "not ruled out by this floor"
    return {
        "value": lowest,
        "text": f"(servers' + relays' CPU) / {ncores} cores, over scp's wall: "
        + ", ".join(parts)
        + f"; lowest {times(lowest)}: {reach}",
    }


def one_host_floor(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The asyncssh floor for one host: the minimal asyncssh script against `ssh`."""
    script, ssh = rows.get(ASYNCSSH_SCRIPT), rows.get("ssh")
    value = ratio(script, ssh)
    if value is None:
        return {"value": None, "text": "asyncssh script not measured"}
    return {
        "value": value,
        "text": f"asyncssh script {seconds(median(script))}: {times(value)} ssh "
        f"(apssh/script {times(ratio(rows.get('apssh'), script))})",
    }


def import_floor(recipe_rows: dict[str, Any], startup: dict[str, Any] | None) -> dict[str, Any]:
    """`python -c 'import asyncssh'` against the 10x budget (Ansible's wall / 10)."""
    ansible = median(recipe_rows.get("ansible-playbook"))
    imported = median(rows_of(startup, "start-up").get(IMPORT_ASYNCSSH)) if startup else None
    if ansible is None or imported is None:
        return {"value": None, "text": "import asyncssh or ansible-playbook not measured"}
    budget = ansible / 10
    return {
        "value": imported / budget,
        "text": f"`import asyncssh` alone {seconds(imported)} = {times(imported / budget)} "
        f"the budget of {seconds(budget)} (Ansible / 10)",
    }


def recipe_targets(recipe: dict[str, Any], startup: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    hosts = recipe["hosts"]
    steps = rows_of(recipe, f"3 steps on {hosts} hosts")
    one = rows_of(recipe, "1 actions on 1 host")
    many = rows_of(recipe, f"{recipe['actions']} actions on 1 host")
    for runner in ("apssh recipe run", "apssh library (SshJobs)"):
        row = steps.get(runner)
        label = "recipe runner" if runner == "apssh recipe run" else "library (SshJobs), indicative"
        if row is None:
            out.append(
                {
                    "scenario": f"{label}: 3 steps on {hosts} hosts",
                    "measured": "not available (no `apssh recipe` in this build)",
                    "value": None,
                    "target": "1 login per host, <= 5 ms per action, >= 10x faster than Ansible",
                    "met": None,
                }
            )
            continue
        logins = row.get("extra", {}).get("logins_per_host", [])
        out.append(
            {
                "scenario": f"{label}: logins per host",
                "measured": f"{logins}",
                "value": max(logins) if logins else None,
                "target": "1",
                "met": bool(logins) and max(logins) == 1,
            }
        )
        t1, tk = median(one.get(runner)), median(many.get(runner))
        per_action = (tk - t1) / (recipe["actions"] - 1) if t1 and tk else None
        out.append(
            {
                "scenario": f"{label}: time per action on an open connection, loopback",
                "measured": f"{seconds(per_action)} ({recipe['actions']} actions "
                f"{seconds(tk)}, 1 action {seconds(t1)})",
                "value": per_action,
                "target": "<= 5 ms",
                "met": None if per_action is None else per_action <= 0.005,
            }
        )
        value = ratio(row, steps.get("ansible-playbook"))
        out.append(
            {
                "scenario": f"{label}: 3 steps on {hosts} hosts against ansible-playbook",
                "measured": f"{seconds(median(row))} vs "
                f"{seconds(median(steps.get('ansible-playbook')))}: {times(value)}",
                "value": value,
                "target": "<= 0.1 (10x faster)",
                "met": None if value is None else value <= 0.1,
                "floor": import_floor(steps, startup),
            }
        )
    return out


def per_action_table(recipe: dict[str, Any]) -> list[str]:
    one = rows_of(recipe, "1 actions on 1 host")
    many = rows_of(recipe, f"{recipe['actions']} actions on 1 host")
    lines = [
        "| tool | 1 action | " + f"{recipe['actions']} actions | per action |",
        "|---|---:|---:|---:|",
    ]
    for name in many:
        t1, tk = median(one.get(name)), median(many.get(name))
        per = (tk - t1) / (recipe["actions"] - 1) if t1 and tk else None
        lines.append(f"| {name} | {seconds(t1)} | {seconds(tk)} | {seconds(per)} |")
    return lines


def plot(found: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fanout = found.get("fanout")
    if not fanout:
        return False
    series: dict[str, list[tuple[int, float]]] = {}
    for size in fanout.get("sizes", []):
        for name, row in rows_of(fanout, f"{size} hosts").items():
            value = median(row)
            if value is not None:
                series.setdefault(name, []).append((size, value))
    bastion = found.get("bastion")
    if bastion:
        rows = rows_of(bastion, f"{bastion['hosts']} hosts")
        for name, row in rows.items():
            value = median(row)
            if value is not None:
                series.setdefault(name, []).append((bastion["hosts"], value))
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in sorted(series.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            marker="o",
            label=name,
            linewidth=2.5 if name.startswith("apssh") else 1,
            linestyle="--" if name == ASYNCSSH_SCRIPT else "-",  # a floor, not a peer
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hosts")
    ax.set_ylabel("wall time, s (median)")
    ax.set_title("`true` on N hosts at 50 ms RTT (one run, paired rounds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown(found: dict[str, dict[str, Any]], goals: list[dict[str, Any]], png: bool) -> str:
    any_data = next(iter(found.values()), {})
    machine = any_data.get("machine", {})
    dates = sorted(data.get("machine", {}).get("date", "?") for data in found.values())
    loads = {name: data.get("machine", {}).get("loadavg") for name, data in found.items()}
    out = [
        "# Benchmark report",
        "",
        f"Generated by `nox -s bench` (benchmarks/report.py), scenarios run from {dates[0]} "
        f"to {dates[-1]}, on "
        f"{machine.get('nproc', '?')} CPUs ({machine.get('cpu', '?')}), "
        f"{machine.get('ram_gib', '?')} GiB RAM, Linux {machine.get('kernel', '?')}, "
        f"Python {machine.get('python', '?')}.",
        "",
        "Load average (1, 5, 15 min) at the end of each scenario: "
        + "; ".join(f"{name} {load}" for name, load in loads.items())
        + ". Ratios are apssh / peer, the median over paired rounds (< 1: apssh faster); "
        "absolute times depend on the load.",
        "",
        "## Targets (issue 13)",
        "",
        "| scenario | measured | target | | floor measured in the same run |",
        "|---|---|---|---|---|",
    ]
    for goal in goals:
        floor = (goal.get("floor") or {}).get("text", "")
        cells = [goal["scenario"], goal["measured"], goal["target"], verdict(goal["met"]), floor]
        out.append("| " + " | ".join(cells) + " |")
    if "fanout" in found:
        data = found["fanout"]
        out += ["", f"## {data['title']}", ""]
        if png:
            out += ["![wall time against hosts](fanout.png)", ""]
        for size in data["sizes"]:
            out += [f"{size} hosts:", "", *case_table(data, f"{size} hosts", "apssh", cpu=True), ""]
    if "bastion" in found:
        data = found["bastion"]
        out += [f"## {data['title']} (window {data['window']})", ""]
        out += case_table(data, f"{data['hosts']} hosts", "apssh via bastion", cpu=True)
        out.append("")
    if "transfer" in found:
        data = found["transfer"]
        out += [f"## {data['title']}", ""]
        cases = ("push loopback", "pull loopback", "push 50 ms RTT", "pull 50 ms RTT")
        for case in (*cases, "push 50 ms RTT, 1 host"):
            rows = rows_of(data, case)
            if not rows:  # results from before that case was measured
                continue
            reference = next((n for n in rows if n.startswith("apssh")), "")
            out += [f"{case}:", "", *transfer_table(data, case, reference), ""]
        problem = (data.get("server_cpu") or {}).get("problem")
        out += [
            f"Server CPU: {problem}, no figure."
            if problem
            else "Server CPU: what the containers (sshd, sftp-server) used during a run, "
            "from their cgroups; relay CPU: Docker's docker-proxy processes of the published "
            "ports and the delay proxy (at 50 ms RTT); floor: both over the "
            f"{transfer_cores(data)} cores, the wall time of a client that would use no CPU; "
            "busy: client, server and relay CPU over (cores x wall), under 100% when the run "
            "waited for something else than CPU (medians of the runs).",
            "",
        ]
    if "cpu" in found:
        data = found["cpu"]
        out += [f"## {data['title']}", ""]
        out += case_table(data, f"{data['hosts']} hosts", "apssh", cpu=True)
        out.append("")
    if "recipe" in found:
        data = found["recipe"]
        out += [f"## Recipes: {data['title']}", ""]
        for line in data.get("missing", []):
            out.append(f"- {line}")
        case = f"3 steps on {data['hosts']} hosts"
        rows = rows_of(data, case)
        reference = "apssh recipe run" if "apssh recipe run" in rows else "apssh library (SshJobs)"
        out += ["", f"{case}:", "", *case_table(data, case, reference, cpu=True), ""]
        out += [
            "Logins per host (first runs): "
            + "; ".join(
                f"{n} {r.get('extra', {}).get('logins_per_host')}" for n, r in rows.items()
            ),
            "",
        ]
        out += [
            "Actions on an open connection (1 host, loopback):",
            "",
            *per_action_table(data),
            "",
        ]
    if "startup" in found:
        data = found["startup"]
        out += ["## Start-up (no connection)", "", "| command | median | best |", "|---|---:|---:|"]
        for name, row in rows_of(data, "start-up").items():
            if row.get("error"):
                out.append(f"| {name} | failed: {row['error'][:120]} | |")
                continue
            out.append(f"| {name} | {seconds(median(row))} | {seconds(min(row['walls']))} |")
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    found = load()
    if not found:
        raise SystemExit("no results in benchmarks/results/raw/: run the bench_*.py scripts first")
    goals = targets(found)
    png = plot(found, RESULTS / "fanout.png")
    (RESULTS / "report.md").write_text(markdown(found, goals, png))
    (RESULTS / "report.json").write_text(
        json.dumps({"targets": goals, "scenarios": found}, indent=1) + "\n"
    )
    print((RESULTS / "report.md").read_text())


if __name__ == "__main__":
    main()
