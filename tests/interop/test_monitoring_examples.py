"""The Grafana dashboard and the Prometheus alert rules in examples/ speak of metrics dynmx exports.

A metric renamed or removed in dynmx/metrics.py would leave a dashboard panel empty and an alert
that can never fire, silently; so every `dynmx_*` name either file uses must be in a real scrape of
a running server's /metrics (a pool with two SMTP-probed members, answers given, RRL on).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import dns.message
import dns.query
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import RunningServer, wait_until, write_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana" / "dynmx.json"
ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"
NAME = re.compile(r"\bdynmx_[a-z0-9_]+")
ZONE = """$ORIGIN example.test.
@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ 3600 IN NS ns1
@ 300 IN MX 10 mx1
@ 300 IN MX 20 mx2
ns1 IN A 127.0.0.1
mx1 IN A 127.0.0.1
mx2 IN A 127.0.0.1
"""


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    """The expr of every active rule (commented-out rules are for metrics that do not exist yet)."""
    return re.findall(r"^\s+expr: (.+)$", ALERTS.read_text(), re.M)


def scraped_names(text: str) -> set[str]:
    """Sample names and metric family names (a counter family `x` has samples `x_total`)."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return names | families | {f"{family}_total" for family in families}


def test_every_metric_the_dashboard_and_alerts_use_is_in_a_real_scrape(
    tmp_path: Path, serve: Callable[..., RunningServer], smtp_controllers: Callable[..., Controller]
) -> None:
    mx1, mx2 = smtp_controllers("mx1.example.test"), smtp_controllers("mx2.example.test")
    members = "".join(
        f'  [[pool.member]]\n  host = "{host}"\n  preference = {pref}\n  probe = "smtp"\n'
        f"  port = {controller.port}\n  interval = 1\n  timeout = 1\n"
        for host, pref, controller in (("mx1.example.test.", 10, mx1), ("mx2.example.test.", 20, mx2))
    )
    config = write_config(
        tmp_path,
        ZONE,
        '[http]\nlisten = "127.0.0.1:0"\n\n[[pool]]\nname = "example.test."\nstrategy = "round-robin"\n'
        + members,
    )
    server = serve("--config", str(config))
    server.wait_for_log("event=member-up")
    for _ in range(4):
        dns.query.udp(
            dns.message.make_query("example.test.", "MX"), "127.0.0.1", port=server.dns_port, timeout=2
        )
    url = f"http://127.0.0.1:{server.http_port}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    wait_until(lambda: "dynmx_pool_first_total{" in scrape())
    exported = scraped_names(scrape())
    used = {name for expr in dashboard_exprs() + alert_exprs() for name in NAME.findall(expr)}
    assert len(used) >= 15
    missing = sorted(used - exported)
    assert not missing, f"used in examples/ but not exported: {missing}"


def test_alert_rules_pass_promtool_or_have_the_rule_shape() -> None:
    """`promtool check rules` where Prometheus is installed; else each rule has what Alertmanager
    routes on (alert, expr, severity, summary)."""
    if shutil.which("promtool"):
        result = subprocess.run(
            ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return
    rules = re.split(r"^\s+- alert: ", ALERTS.read_text(), flags=re.M)[1:]
    assert len(rules) >= 8
    for rule in rules:
        for key in ("expr:", "severity:", "summary:"):
            assert key in rule.split("\n\n")[0], rule


def test_alerts_cover_what_an_operator_must_hear_of() -> None:
    text = ALERTS.read_text()
    for alert in (
        "DynmxDown",
        "DynmxMemberDown",
        "DynmxPoolFailOpen",
        "DynmxZoneWriteFailing",
        "DynmxZoneUnavailable",
        "DynmxRefusalsSpiking",
    ):
        assert f"- alert: {alert}\n" in text


def test_dashboard_panels_tile_a_24_column_grid_without_overlap() -> None:
    """Grafana lays panels out by gridPos: 24 columns wide; two panels on one cell hide each other."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["type"] == "row" or panel["targets"], panel["title"]


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_dashboard_queries_have_balanced_brackets(expr: str) -> None:
    for open_, close in ("()", "{}", "[]"):
        assert expr.count(open_) == expr.count(close), expr


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dynmx_render", ROOT / "examples" / "grafana" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_render_script_evaluates_every_dashboard_query() -> None:
    """examples/grafana/render.py draws docs/dashboard.svg; a panel it cannot evaluate would be lost."""
    render = load_render()
    for expr in dashboard_exprs():
        render.evaluate(expr, [])


def test_render_rate_and_sum_by_follow_promql() -> None:
    """rate() is the increase per second between scrapes; sum by keeps only the named labels."""
    render = load_render()
    a = (("instance", "dynmx"), ("member", "mx1."), ("pool", "p."))
    b = (("instance", "dynmx"), ("member", "mx2."), ("pool", "p."))
    scrapes = [
        (0.0, {("dynmx_pool_first_total", a): 10.0, ("dynmx_pool_first_total", b): 0.0}),
        (2.0, {("dynmx_pool_first_total", a): 30.0, ("dynmx_pool_first_total", b): 4.0}),
    ]
    by_pool = render.evaluate("sum by (pool) (rate(dynmx_pool_first_total[1m]))", scrapes)
    assert by_pool == {(("pool", "p."),): [None, 12.0]}
    one = render.evaluate('rate(dynmx_pool_first_total{member="mx2."}[1m])', scrapes)
    assert one == {b: [None, 2.0]}
