#!/usr/bin/python3
"""Offline checks of the monitoring artefacts against the list of exported metrics.

Usage: check_monitoring.py --source-dir DIR [--promtool P] [--kubectl K] CHECK

CHECK:
  metrics     deploy/metrics.txt is well formed (names, types, counters end in _total)
  dashboard   deploy/grafana/sfpo.json: a Prometheus datasource variable used by every query,
              the panels the operators need, no overlapping panels, every query valid PromQL
              (promtool) using only metrics and label values from deploy/metrics.txt
  rules       deploy/prometheus/rules.yml uses only listed metrics and label values; the
              PrometheusRule equals the generator's output and carries the same groups; the
              rendered base deploys exactly rules.yml's groups and sfpo.json's dashboard
  selftest    the PromQL scanner finds unknown metrics and bad label values
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

# Labels Prometheus adds at scrape time (deploy/prometheus/*.yml, the PodMonitor) or that
# every histogram bucket has.
SCRAPE_LABELS = {"job", "instance", "component", "worker", "namespace", "pod", "service"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "Inf", "NaN"}

# Panels the dashboard must have: (title, metrics its queries must use).
REQUIRED_PANELS = [
    ("Rollouts over time", {"sfpo_rollouts_total"}),
    ("Reward and accuracy against rollouts", {"sfpo_rollouts_total", "sfpo_reward_mean", "sfpo_accuracy"}),
    ("Step time by stage", {"sfpo_step_seconds"}),
    ("Weight sync time", {"sfpo_weight_sync_seconds"}),
    ("Policy staleness", {"sfpo_policy_staleness"}),
    ("Verdict mix", {"sfpo_reward_verdicts_total"}),
    ("Tokens per second by worker", {"sfpo_rollout_tokens_total"}),
    ("SFPO gate", {"sfpo_sfpo_active", "sfpo_entropy_zscore"}),
]


class Failures(list):
    def expect(self, condition, message):
        if not condition:
            self.append(message)
        return condition


# ---------------------------------------------------------------------------------------------
def load_metrics(path, fails):
    """Returns {name: (type, {label: set(values) or None})} from metrics.txt."""
    metrics = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            where = f"{path}:{lineno}"
            if not fails.expect(len(fields) >= 3, f"{where}: want NAME TYPE ROLE [LABEL=v|v...]"):
                continue
            name, kind, role = fields[:3]
            fails.expect(re.fullmatch(r"sfpo_[a-z0-9_]+", name), f"{where}: {name} is not sfpo_snake_case")
            fails.expect(kind in ("counter", "gauge", "histogram"), f"{where}: unknown type {kind}")
            fails.expect(role in ("learner", "rollout", "reward"), f"{where}: unknown role {role}")
            fails.expect((kind == "counter") == name.endswith("_total"),
                         f"{where}: counters, and only counters, end in _total ({name} is a {kind})")
            fails.expect(name not in metrics, f"{where}: {name} listed twice")
            labels = {}
            for spec in fields[3:]:
                label, _, values = spec.partition("=")
                labels[label] = None if values in ("", "*") else set(values.split("|"))
            metrics[name] = (kind, labels)
    fails.expect(metrics, f"{path}: no metrics")
    return metrics


def substitute_variables(expr):
    """Grafana's variables replaced by values PromQL accepts."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


def scan_promql(expr):
    """Returns (metric names, [(metric, label, op, value)]) used by a PromQL expression.

    A small scanner, not a parser: label matchers are read from {...}, grouping label lists,
    ranges, strings, numbers, keywords and function calls are dropped; what remains are
    metric names. promtool checks the syntax separately.
    """
    matchers = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}", expr):
        for lm in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            matchers.append((m.group(1) or "", lm.group(1), lm.group(2), lm.group(3)))
    e = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0) in KEYWORDS:
            continue
        names.add(m.group(0))
    return names, matchers


def base_metric(name, metrics):
    """The listed family a series name belongs to, or None."""
    if name in metrics:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and metrics.get(name[: -len(suffix)], ("",))[0] == "histogram":
            return name[: -len(suffix)]
    return None


def check_expr(expr, where, metrics, fails):
    names, matchers = scan_promql(substitute_variables(expr))
    for n in sorted(names):
        fails.expect(base_metric(n, metrics), f"{where}: metric {n} is not in deploy/metrics.txt")
    for metric, label, op, value in matchers:
        family = base_metric(metric, metrics)
        if not family:
            continue
        declared = metrics[family][1]
        allowed = set(declared) | SCRAPE_LABELS | ({"le"} if metric.endswith("_bucket") else set())
        if not fails.expect(label in allowed, f"{where}: {metric} has no label {label!r}"):
            continue
        values = declared.get(label)
        if values and op in ("=", "!="):
            fails.expect(value in values, f"{where}: {metric}{{{label}}} has no value {value!r} (listed: {sorted(values)})")
    return names


def promtool_check_exprs(promtool, exprs, fails):
    """Every expression parses: promtool checks them as recording rules."""
    rules = [{"record": f"sfpo_check:expr_{i}", "expr": substitute_variables(e)} for i, (e, _) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}, f)
        path = f.name
    try:
        proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        for i in sorted({int(m) for m in re.findall(r'sfpo_check:expr_(\d+)"', out)}):
            fails.append(f"{exprs[i][1]}: promtool rejects {exprs[i][0]!r}")
        fails.append(f"promtool check rules on the dashboard queries failed:\n{out}")


# ---------------------------------------------------------------------------------------------
def dashboard_queries(dash):
    """(expr, where) for every query in the dashboard, and the panels."""
    queries, panels = [], []
    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    for p in panels:
        for t in p.get("targets", []):
            queries.append((t.get("expr", ""), f"panel {p.get('id')} {p.get('title')!r} query {t.get('refId')}"))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            m = re.fullmatch(r"\s*label_values\(\s*([^,]+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q or "")
            if m:
                queries.append((m.group(1), f"variable {v['name']} (label_values on {m.group(2)})"))
            else:
                queries.append((q, f"variable {v['name']}"))
    return queries, panels


def check_dashboard(opts, metrics, fails):
    path = os.path.join(opts.source_dir, "deploy/grafana/sfpo.json")
    with open(path, encoding="utf-8") as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            fails.append(f"{path}: not JSON: {e}")
            return
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = [n for n, v in variables.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if not fails.expect(ds, f"{path}: needs a datasource variable of type prometheus"):
        return
    ds_ref = "${" + ds[0] + "}"
    queries, panels = dashboard_queries(dash)
    ids = [p.get("id") for p in panels]
    fails.expect(len(ids) == len(set(ids)), f"{path}: panel ids repeat: {ids}")
    # Panels must not overlap on Grafana's 24-column grid.
    cells = {}
    for p in panels:
        g = p.get("gridPos")
        if not fails.expect(g and all(k in g for k in "hwxy"), f"panel {p.get('id')}: no gridPos"):
            continue
        fails.expect(g["x"] + g["w"] <= 24, f"panel {p.get('id')} {p.get('title')!r} is wider than the grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                other = cells.setdefault((x, y), p.get("id"))
                fails.expect(other == p.get("id"), f"panels {other} and {p.get('id')} overlap at ({x},{y})")
    for p in panels:
        if p.get("type") == "row":
            continue
        for t in p.get("targets", []):
            tds = t.get("datasource") or p.get("datasource") or {}
            fails.expect(tds.get("uid") == ds_ref, f"panel {p.get('id')} {p.get('title')!r}: query "
                         f"{t.get('refId')} must use datasource {ds_ref}, not {tds}")
    fails.expect(queries, f"{path}: no queries")
    used_by_title = {}
    for expr, where in queries:
        names = check_expr(expr, where, metrics, fails)
        title = where.split("'")[1] if "'" in where else where
        used_by_title.setdefault(title, set()).update(base_metric(n, metrics) for n in names)
    for title, needed in REQUIRED_PANELS:
        have = used_by_title.get(title)
        if fails.expect(have is not None, f"{path}: no panel titled {title!r}"):
            fails.expect(needed <= have, f"panel {title!r} should plot {sorted(needed - have)}")
    xy = [p for p in panels if p.get("title") == "Reward and accuracy against rollouts"]
    fails.expect(xy and xy[0].get("type") == "xychart", "the reward/accuracy-against-rollouts panel must be an XY chart")
    if opts.promtool:
        promtool_check_exprs(opts.promtool, queries, fails)


# ---------------------------------------------------------------------------------------------
def render(kubectl, source_dir, path):
    proc = subprocess.run([kubectl, "kustomize", os.path.join(source_dir, path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path}: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def check_rules(opts, metrics, fails):
    rules_path = os.path.join(opts.source_dir, "deploy/prometheus/rules.yml")
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    alerts = []
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            where = f"rules.yml {r.get('alert') or r.get('record')}"
            check_expr(r["expr"], where, metrics, fails)
            alerts.append(r.get("alert"))
            if r.get("alert"):
                fails.expect(r.get("labels", {}).get("severity") in ("warning", "critical"),
                             f"{where}: needs labels.severity warning|critical")
                fails.expect(r.get("annotations", {}).get("summary"), f"{where}: needs annotations.summary")
    for alert in ("SfpoLearnerStalled", "SfpoNoRollouts", "SfpoWeightSyncFailing", "SfpoWeightSyncSlow",
                  "SfpoVerifierErrorRateHigh", "SfpoWorkerStuckOnOldVersion"):
        fails.expect(alert in alerts, f"rules.yml: no alert {alert}")

    gen = os.path.join(opts.source_dir, "deploy/prometheus/gen_prometheusrule.py")
    proc = subprocess.run([sys.executable, gen], capture_output=True, text=True)
    committed_path = os.path.join(opts.source_dir, "deploy/prometheus/prometheusrule.yaml")
    with open(committed_path, encoding="utf-8") as f:
        committed = f.read()
    fails.expect(proc.returncode == 0 and proc.stdout == committed,
                 "deploy/prometheus/prometheusrule.yaml differs from the generator's output: run "
                 "deploy/prometheus/gen_prometheusrule.py > deploy/prometheus/prometheusrule.yaml")
    pr = yaml.safe_load(committed)
    fails.expect(pr.get("kind") == "PrometheusRule" and pr["spec"]["groups"] == rules["groups"],
                 "prometheusrule.yaml's spec.groups differ from rules.yml's groups")

    objs = render(opts.kubectl, opts.source_dir, "deploy/k8s/base")
    deployed = [o for o in objs if o["kind"] == "PrometheusRule"]
    fails.expect(len(deployed) == 1 and deployed[0]["spec"]["groups"] == rules["groups"],
                 "the base must deploy one PrometheusRule with rules.yml's groups")
    with open(os.path.join(opts.source_dir, "deploy/grafana/sfpo.json"), encoding="utf-8") as f:
        dashboard = f.read()
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")]
    fails.expect(len(cms) == 1 and cms[0]["data"].get("sfpo.json") == dashboard,
                 "the base must deploy deploy/grafana/sfpo.json verbatim in one grafana_dashboard ConfigMap")


def selftest(metrics, fails):
    cases = [
        ('sum by (stage) (rate(sfpo_step_seconds_sum[$__rate_interval]))', []),
        ('histogram_quantile(0.9, sum by (le) (rate(sfpo_weight_sync_seconds_bucket[5m]))) > 1e-3', []),
        ('scalar(max(sfpo_policy_version)) - sfpo_rollout_policy_version{worker=~"$worker"}', []),
        ('rate(sfpo_no_such_metric_total[5m])', ["metric sfpo_no_such_metric_total is not"]),
        ('up{job="x"} == 0', ["metric up is not"]),
        ('sfpo_policy_version_bucket', ["metric sfpo_policy_version_bucket is not"]),
        ('sfpo_samples_total{state="done"}', ["has no value 'done'"]),
        ('sfpo_accuracy{splitt="train"}', ["has no label 'splitt'"]),
        ('sum without (verdict) (rate(sfpo_reward_verdicts_total{verdict="error"}[5m])) / 2', []),
    ]
    for expr, want in cases:
        got = Failures()
        check_expr(expr, "selftest", metrics, got)
        if not want:
            fails.expect(not got, f"scanner: {expr!r} should pass, got {got}")
        for w in want:
            fails.expect(any(w in g for g in got), f"scanner: {expr!r} should report {w!r}, got {got}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--promtool", default="promtool")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("check", choices=["metrics", "dashboard", "rules", "selftest"])
    opts = parser.parse_args()
    fails = Failures()
    metrics = load_metrics(os.path.join(opts.source_dir, "deploy/metrics.txt"), fails)
    try:
        if opts.check == "dashboard":
            check_dashboard(opts, metrics, fails)
        elif opts.check == "rules":
            check_rules(opts, metrics, fails)
        elif opts.check == "selftest":
            selftest(metrics, fails)
    except (RuntimeError, OSError, yaml.YAMLError, KeyError) as e:
        fails.append(f"{type(e).__name__}: {e}")
    for m in fails:
        print("FAIL", m)
    if not fails:
        print(f"OK: {opts.check}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
