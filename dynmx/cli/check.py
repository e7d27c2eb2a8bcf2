"""`dynmx check`: validate everything `serve` would load (config, zones, pools, DNSSEC), or
zone files on their own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dynmx.cli.options import config_from_args
from dynmx.errors import ConfigError


def _check_files(args: argparse.Namespace) -> int:
    """Check zone files on their own, as `nsd-checkzone` and `kzonecheck` do: no config, no server."""
    import dns.name

    from dynmx.errors import ZoneLoadError
    from dynmx.zone.loader import load_zone_file

    origin = dns.name.from_text(args.origin) if args.origin else None
    reports = []
    for file in args.files:
        try:
            zone = load_zone_file(Path(file), origin)
        except ZoneLoadError as error:
            reports.append(
                {"file": file, "ok": False, "problems": [str(problem) for problem in error.problems]}
            )
            continue
        soa = zone.zone.get_rdataset(zone.origin, "SOA")
        serial = soa[0].serial if soa else None
        records = sum(len(rdataset) for _, rdataset in zone.zone.iterate_rdatasets())
        reports.append(
            {"file": file, "ok": True, "zone": zone.origin.to_text(), "serial": serial, "records": records}
        )
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            if report["ok"]:
                zone_line = f"zone {report['zone']} serial {report['serial']}, {report['records']} records"
                print(f"ok: {report['file']}: {zone_line}")
            for problem in report.get("problems", []):
                print(problem)
    return 0 if all(report["ok"] for report in reports) else 1


def run_check(args: argparse.Namespace) -> int:
    """Validate everything `serve` would load; exit 1 with `file:line: reason` lines."""
    from dynmx.app.zonescan import scan_zones, zone_data
    from dynmx.config import readable_secrets
    from dynmx.policy.checks import check_policy
    from dynmx.policy.signing_check import config_problems

    if args.files:
        return _check_files(args)
    if args.origin:
        raise ConfigError("--origin: only with zone files to check (dynmx check --origin ZONE FILE)")
    try:
        config = config_from_args(args)
    except ConfigError as error:
        if args.json:
            print(json.dumps({"ok": False, "config": args.config, "problems": [str(error)]}, indent=2))
        else:
            print(error)
        return 1
    zones_dir = config.path(config.server.zones_dir)
    zones, zone_problems = scan_zones(zones_dir, {}, max_size=config.server.max_zone_file_size)
    policy_problems, policy_warnings = check_policy(config, zone_data(zones))
    source = f"{args.config}: " if args.config else ""
    problems = [str(problem) for problem in zone_problems] + [f"{source}{text}" for text in policy_problems]
    problems += [str(problem) for problem in config_problems(config, zones.values())]  # dnssec = true
    warnings = [f"{source}warning: {text}" for text in policy_warnings] + [
        f"{path}: warning: holds secrets and is readable by others (mode {mode:04o}): chmod o-r"
        for path, mode in readable_secrets(config)
    ]
    names = sorted(z.origin.to_text() for z in zones.values())
    if args.json:
        report = {
            "ok": not problems,
            "config": args.config,
            "zones_dir": str(zones_dir),
            "zones": names,
            "pools": [pool.name for pool in config.pool],
            "problems": problems,
            "warnings": warnings,
        }
        print(json.dumps(report, indent=2))
        return 1 if problems else 0
    for line in problems + warnings:
        print(line)
    if problems:
        return 1
    pools = f", {len(config.pool)} pool(s)" if config.pool else ""
    print(f"ok: {len(zones)} zone(s): {', '.join(names)}{pools}" if zones else f"ok: no zones in {zones_dir}")
    return 0
