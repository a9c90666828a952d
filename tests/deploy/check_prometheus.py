#!/usr/bin/python3
"""Offline checks of the Prometheus scrape configs.

Usage: check_prometheus.py --source-dir DIR [--promtool P] [--kubectl K] CHECK

CHECK:
  config   `promtool check config` passes on deploy/prometheus/prometheus.yml, and on
           prometheus-kubernetes.yml with its kubernetes_sd_configs swapped for a static target
           (Debian's promtool is built without Kubernetes discovery; this still checks the
           relabelling rules and everything else)
  relabel  applying the relabel rules of each scrape path (local static targets, Kubernetes pod
           discovery, the PodMonitor) to the rendered pods gives one target per pod, on its
           metrics port, labelled component=<role>, and worker=<pod> for rollout workers only
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROLES = {"learner": 9090, "rollout": 9091, "reward": 9092}


def promtool_check_config(promtool, path):
    proc = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def check_config(opts, fails):
    prom_dir = os.path.join(opts.source_dir, "deploy/prometheus")
    rc, out = promtool_check_config(opts.promtool, os.path.join(prom_dir, "prometheus.yml"))
    if rc != 0:
        fails.append(f"promtool check config prometheus.yml:\n{out}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(prom_dir, "rules.yml"), tmp)
        with open(os.path.join(prom_dir, "prometheus-kubernetes.yml"), encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        swapped = 0
        for job in cfg.get("scrape_configs", []):
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["10.0.0.1:9090"]}]
                swapped += 1
        if swapped == 0:
            fails.append("prometheus-kubernetes.yml has no kubernetes_sd_configs job")
        path = os.path.join(tmp, "prometheus-kubernetes.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f)
        rc, out = promtool_check_config(opts.promtool, path)
        if rc != 0:
            fails.append(f"promtool check config prometheus-kubernetes.yml (static target):\n{out}")


# ---------------------------------------------------------------------------------------------
def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def expand(replacement, match):
    """Prometheus's $1 / ${1} / $name in a replacement."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: match.group(int(m.group(1)) if m.group(1).isdigit() else m.group(1)) or "",
                  replacement)


def relabel(labels, rules, camel=False):
    """Applies Prometheus relabel_configs (or the operator's camelCase relabelings) to a target's
    labels; returns the new labels or None when the target is dropped."""
    labels = dict(labels)
    for r in rules:
        src = r.get("sourceLabels" if camel else "source_labels", [])
        target = r.get("targetLabel" if camel else "target_label")
        regex = re.compile("^(?:" + str(r.get("regex", "(.*)")) + ")$")
        action = r.get("action", "replace").lower()
        value = r.get("separator", ";").join(labels.get(s, "") for s in src)
        m = regex.match(value)
        if action == "keep":
            if not m:
                return None
        elif action == "drop":
            if m:
                return None
        elif action == "replace":
            if m:
                new = expand(str(r.get("replacement", "$1")), m)
                if new:
                    labels[target] = new
                else:
                    labels.pop(target, None)
        else:
            raise ValueError(f"relabel action {action} not simulated")
    return {k: v for k, v in labels.items() if not k.startswith("__") or k in ("__address__", "__metrics_path__")}


def pods(objs):
    """(pod name, pod labels, annotations, container ports) for one pod of each workload."""
    for w in objs:
        if w["kind"] not in ("Deployment", "StatefulSet"):
            continue
        tmpl = w["spec"]["template"]
        name = w["metadata"]["name"] + ("-0" if w["kind"] == "StatefulSet" else "-7c9d8-abcde")
        ports = [p for c in tmpl["spec"]["containers"] for p in c.get("ports", [])]
        yield name, tmpl["metadata"].get("labels", {}), tmpl["metadata"].get("annotations", {}), ports, \
            w["metadata"].get("namespace", "")


def expect_targets(targets, role, pod, where, fails):
    if not targets:
        fails.append(f"{where}: pod {pod} ({role}) is not scraped")
        return
    addresses = {t["__address__"] for t in targets}
    if addresses != {f"10.1.2.3:{ROLES[role]}"}:
        fails.append(f"{where}: pod {pod} ({role}) scraped at {sorted(addresses)}, want its metrics port {ROLES[role]}")
    for t in targets:
        if t.get("component") != role:
            fails.append(f"{where}: pod {pod} gets component={t.get('component')!r}, want {role!r}")
        want_worker = pod if role == "rollout" else None
        if t.get("worker") != want_worker:
            fails.append(f"{where}: pod {pod} gets worker={t.get('worker')!r}, want {want_worker!r}")


def check_relabel(opts, fails):
    prom_dir = os.path.join(opts.source_dir, "deploy/prometheus")
    proc = subprocess.run([opts.kubectl, "kustomize", os.path.join(opts.source_dir, "deploy/k8s/base")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        fails.append(f"kubectl kustomize deploy/k8s/base: {proc.stderr}")
        return
    objs = [d for d in yaml.safe_load_all(proc.stdout) if d]

    # Kubernetes pod discovery: one target per declared container port.
    with open(os.path.join(prom_dir, "prometheus-kubernetes.yml"), encoding="utf-8") as f:
        k8s = yaml.safe_load(f)
    job = next(j for j in k8s["scrape_configs"] if "kubernetes_sd_configs" in j)
    seen = 0
    for name, labels, annotations, ports, ns in pods(objs):
        meta = {"__meta_kubernetes_pod_name": name, "__meta_kubernetes_namespace": ns,
                "__meta_kubernetes_pod_phase": "Running", "__metrics_path__": "/metrics"}
        meta.update({"__meta_kubernetes_pod_label_" + sanitize(k): v for k, v in labels.items()})
        meta.update({"__meta_kubernetes_pod_annotation_" + sanitize(k): v for k, v in annotations.items()})
        targets = [relabel(dict(meta, __address__=f"10.1.2.3:{p['containerPort']}"), job["relabel_configs"])
                   for p in ports]
        targets = {tuple(sorted(t.items())) for t in targets if t}
        role = labels.get("app.kubernetes.io/component")
        expect_targets([dict(t) for t in targets], role, name, "prometheus-kubernetes.yml", fails)
        seen += 1
        # A pod that is not Running is dropped.
        stopped = dict(meta, __meta_kubernetes_pod_phase="Succeeded", __address__="10.1.2.3:1")
        if relabel(stopped, job["relabel_configs"]) is not None:
            fails.append(f"prometheus-kubernetes.yml: a finished pod {name} is still scraped")
    if seen != 3:
        fails.append(f"expected 3 workloads in the base, saw {seen}")

    # The PodMonitor: the operator keeps the endpoint whose port name matches, then relabels.
    for pm in (o for o in objs if o["kind"] == "PodMonitor"):
        for ep in pm["spec"]["podMetricsEndpoints"]:
            for name, labels, annotations, ports, ns in pods(objs):
                sel = pm["spec"]["selector"].get("matchLabels", {})
                if not all(labels.get(k) == v for k, v in sel.items()):
                    continue
                meta = {"__meta_kubernetes_pod_name": name, "__meta_kubernetes_namespace": ns}
                meta.update({"__meta_kubernetes_pod_label_" + sanitize(k): v for k, v in labels.items()})
                targets = [relabel(dict(meta, __address__=f"10.1.2.3:{p['containerPort']}"),
                                   ep.get("relabelings", []), camel=True)
                           for p in ports if p.get("name") == ep["port"]]
                expect_targets([t for t in targets if t], labels.get("app.kubernetes.io/component"), name,
                               f"PodMonitor {pm['metadata']['name']}", fails)

    # Local mode: the static targets on the default ports.
    with open(os.path.join(prom_dir, "prometheus.yml"), encoding="utf-8") as f:
        local = yaml.safe_load(f)
    job = next(j for j in local["scrape_configs"] if j["job_name"] == "sfpo-local")
    found = {}
    for sc in job["static_configs"]:
        for t in sc["targets"]:
            out = relabel(dict(sc.get("labels", {}), __address__=t), job.get("relabel_configs", []))
            found[out.get("component")] = out
    for role, port in ROLES.items():
        t = found.get(role)
        if not t or t["__address__"] != f"127.0.0.1:{port}":
            fails.append(f"prometheus.yml: no {role} target on 127.0.0.1:{port}")
        elif (t.get("worker") is not None) != (role == "rollout"):
            fails.append(f"prometheus.yml: {role} target has worker={t.get('worker')!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--promtool", default="promtool")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("check", choices=["config", "relabel"])
    opts = parser.parse_args()
    fails = []
    if opts.check == "config":
        check_config(opts, fails)
    else:
        check_relabel(opts, fails)
    for m in fails:
        print("FAIL", m)
    if not fails:
        print(f"OK: {opts.check}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
