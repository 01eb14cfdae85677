"""Run the reliability measurements and print them as markdown (for docs/reliability.md).

    python -m benchmarks.reliability_figures            # full run, about two minutes
    python -m benchmarks.reliability_figures --quick    # smaller counts
    python -m benchmarks.reliability_figures --update-docs

Run it from the repository root: it imports the `benchmarks` and `tests` packages (the fake OpsGenie
and S3 servers the scenarios talk to live in `tests/`).

The measurements are the same functions (tests/support/scenarios.py) that the tests in
tests/cache_utils/ assert on: test_crash_safety.py, test_concurrent_writers.py, test_corruption.py,
test_memory_cache_stress.py, test_alert_failures.py and test_bad_inputs.py.
`--update-docs` replaces the text between the `reliability-figures` markers.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie, refused_url
from tests.support.scenarios import (
    measure_alert_bound,
    measure_bad_alert_settings,
    measure_hangs,
    measure_reader_latency,
    measure_secret_forms,
    run_bad_inputs,
    run_bit_rot,
    run_concurrency,
    run_kill_points,
    run_memory_stress,
)

ROOT = Path(__file__).resolve().parent.parent

BEGIN, END = "<!-- reliability-figures:begin -->", "<!-- reliability-figures:end -->"
ALERT_MODES = ["refused", "500", "429", "nonjson", "hang"]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def figures(quick: bool) -> str:
    """Run every measurement; return the markdown."""
    kills = 20 if quick else 60
    seconds = 3.0 if quick else 10.0
    lines: list[str] = []
    out = lines.append
    with tempfile.TemporaryDirectory() as d:
        crash = run_kill_points(d, kills=kills, size=16 << 20, seed=1)
    with tempfile.TemporaryDirectory() as d:
        conc = run_concurrency(d, writers=8, readers=4, seconds=seconds)
    with tempfile.TemporaryDirectory() as d:
        rot = run_bit_rot(d, flips=300, seed=5)
    with tempfile.TemporaryDirectory() as d:
        rot_signed = run_bit_rot(d, flips=300, seed=5, signing_key="figures-key")
    stress = run_memory_stress(threads=8, seconds=seconds)
    latency = measure_reader_latency(items=200_000)
    alerts = []
    for mode in ALERT_MODES:
        with tempfile.TemporaryDirectory() as d:
            if mode == "refused":
                alerts.append((mode, measure_alert_bound(d, refused_url(), TEST_API_KEY, 1.0)))
            else:
                with FakeOpsGenie(mode) as server:
                    alerts.append((mode, measure_alert_bound(d, server.url, TEST_API_KEY, 1.0)))
    with tempfile.TemporaryDirectory() as d:
        bad = run_bad_inputs(d)
    with tempfile.TemporaryDirectory() as d:
        hangs = measure_hangs(d)
    with tempfile.TemporaryDirectory() as d, FakeOpsGenie() as server:
        settings = measure_bad_alert_settings(d, server.url, TEST_API_KEY)
    with tempfile.TemporaryDirectory() as d, FakeOpsGenie("500") as server:
        secrets = measure_secret_forms(d, server.url)

    out(f"Measured by `python -m benchmarks.reliability_figures{' --quick' if quick else ''}` "
        f"(Python {platform.python_version()}, {os.cpu_count()} cores, Linux). "
        "Every number below was produced by running the scenario, not typed by hand.")
    out("")
    out("| guarantee | scenario | result |")
    out("| --- | --- | --- |")
    out(f"| crash during a write | a child saving {16} MiB values in a loop (one save ~"
        f"{crash['write_seconds'] * 1000:.0f} ms) SIGKILLed at {crash['kills']} random points | "
        f"**{crash['kills'] - len(crash['violations'])} of {crash['kills']} kill points survived**: "
        f"{crash['mid_write_kills']} landed mid-write; "
        + ("every time the final name held a complete file and `load_cache` returned it"
           if not crash["violations"] else "VIOLATIONS: " + _md_cell("; ".join(crash["violations"])))
        + f"; {crash['temp_files_left']} orphan temp files, none listed |")
    failures = conc["write_errors"] + conc["load_errors"] + conc["bad_values"]
    out(f"| concurrent writers | {conc['writers']} processes saving one prefix and date while "
        f"{conc['readers']} processes `load_cache` it, {conc['seconds']:.0f} s | "
        f"**{conc['saves'] + conc['loads']:,} operations, {failures} failures** ({conc['saves']:,} "
        f"saves, {conc['loads']:,} checksum-verified loads, values of "
        f"{len(conc['writers_seen'])} different writers seen) |")
    out(f"| bit rot | 300 single-bit flips of a {rot['file_bytes']:,}-byte file, one at a time | "
        f"**{rot['different']} returned different data**; {rot['detected']} detected (CorruptCacheError, "
        f"`load_cache` fell back {rot['fallback']} times), {rot['same']} harmless (exact original) |")
    out(f"| bit rot, signed | the same, HMAC-signed file | **{rot_signed['different']} different**; "
        f"{rot_signed['detected']} detected, {rot_signed['same']} harmless |")
    out(f"| InMemoryCache stress | {stress['threads']} threads of random get/put/put_many/get_many/"
        f"put_state/delete/clear/keys, checked against per-thread models, {stress['seconds']:.1f} s | "
        f"**{stress['ops_per_second']:,.0f} checked ops/s**, {stress['ops']:,} ops, "
        f"{len(stress['violations'])} violations |")
    out(f"| reader during a huge copy | small `get`s while another thread copies a 200,000-item nested "
        f"list ({latency['copy_seconds'] * 1000:.0f} ms) | reader max latency "
        f"**{latency['reader_max_seconds'] * 1000:.1f} ms** "
        f"({latency['reader_max_seconds'] / latency['copy_seconds']:.1%} of the copy), "
        f"{latency['reader_gets']:,} gets meanwhile |")
    out("")
    out("Alerting failures: `load_cache` with a corrupt today's file (so it must alert) against each "
        "kind of broken OpsGenie, alert timeout 1 s:")
    out("")
    out("| OpsGenie server | `load_cache` took | failure warnings logged | data returned |")
    out("| --- | --- | --- | --- |")
    for mode, r in alerts:
        label = {"refused": "refuses connections", "500": "answers 500", "429": "answers 429",
                 "nonjson": "answers non-JSON", "hang": "never answers"}[mode]
        out(f"| {label} | {r['elapsed']:.2f} s | {r['failure_logs']} | "
            f"{'unchanged' if r['data_ok'] else 'WRONG'} |")
    worst = max(r["elapsed"] for _m, r in alerts)
    out("")
    out(f"Alert-failure bound measured: **{worst:.2f} s** at worst with a 1 s timeout.")
    out("")
    out("Hangs bounded: each of these once blocked forever.")
    out("")
    out("| scenario | took | outcome |")
    out("| --- | --- | --- |")
    for r in hangs:
        out(f"| {r['scenario']} | {r['seconds']:.2f} s | {'' if r['ok'] else 'FAILED: '}"
            f"{_md_cell(r['outcome'])} |")
    out("")
    survived = sum(r["ok"] for r in settings)
    out(f"Bad settings survived: `load_cache` of a good today's file with `OPSGENIE_API_KEY` set and "
        f"`CACHE_UTILS_ALERT_TIMEOUT` malformed: **{survived} of {len(settings)} loaded the data and "
        "warned once**:")
    out("")
    out("| CACHE_UTILS_ALERT_TIMEOUT | `load_cache` took | outcome | warnings |")
    out("| --- | --- | --- | --- |")
    for r in settings:
        out(f"| `{r['value']}` | {r['seconds']:.2f} s | {_md_cell(r['outcome'])} | {r['warnings']} |")
    out("")
    out(f"Secrets in every form: an OpsGenie key ending in a newline (as read from a secret file), "
        f"alerts failing with HTTP 500, every log record of every logger at DEBUG with tracebacks: "
        f"**{secrets['leaks']} of {secrets['records']} records hold any of {secrets['forms']} forms of "
        f"the key** (stripped, str repr, bytes repr, the `GenieKey` header); data "
        f"{'returned' if secrets['data_ok'] else 'NOT returned'}.")
    out("")
    ok = sum(r["ok"] == "True" for r in bad)
    out(f"Bad inputs: **{len(bad)} tried, {ok} gave the expected error naming the bad value** "
        "(`tests/cache_utils/test_bad_inputs.py`):")
    out("")
    out("| input | call | error | message |")
    out("| --- | --- | --- | --- |")
    for r in bad:
        out(f"| {r['what']} | `{_md_cell(r['call'])}` | {r['got']} | {_md_cell(r['message'][:140])} |")
    return "\n".join(lines)


def update_docs(text: str) -> None:
    """Replace what is between the figure markers in docs/reliability.md."""
    path = ROOT / "docs" / "reliability.md"
    readme = path.read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    path.write_text(readme[:start] + "\n" + text + "\n" + readme[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer kill points, shorter stress")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the figures into docs/reliability.md")
    args = parser.parse_args()
    text = figures(args.quick)
    print(text)
    if args.update_docs:
        update_docs(text)


if __name__ == "__main__":
    main()
