#!/usr/bin/python3
"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster needed).

Usage: check_manifests.py --source-dir DIR --sfpo BIN [--kubectl KUBECTL] CHECK

Each CHECK renders every kustomization (the base and each overlay) with `kubectl kustomize`
and inspects the objects:
  render      every kustomization renders, with the objects a deployment needs
  services    every Service selector matches a workload's pod labels; every targetPort is a
              port of a selected container; the PodMonitor's port exists on the pods it selects;
              the HPA and PDBs target existing workloads
  security    every pod runs as non-root with a read-only root filesystem, no privilege
              escalation, all capabilities dropped, a writable emptyDir /tmp, resource
              requests and limits, gRPC readiness and liveness probes on its gRPC port, scrape
              annotations naming its metrics port, and the Dockerfile's user
  args        every container's arguments are accepted by `sfpo ... --check` (with the
              ConfigMaps mounted where the pod mounts them and $(VAR)s expanded as the kubelet
              does); every run config ConfigMap loads with `sfpo learner --config FILE --check`
  network     the NetworkPolicies allow exactly the flows of the design
Exits 0 when every check passes; otherwise prints each failure and exits 1.
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

import yaml

KUSTOMIZATIONS = ["deploy/k8s/base", "deploy/k8s/overlays/local", "deploy/k8s/overlays/gpu"]
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
ROLES = ("learner", "rollout", "reward")
COMPONENT = "app.kubernetes.io/component"


class Failures:
    def __init__(self):
        self.messages = []

    def add(self, where, message):
        self.messages.append(f"{where}: {message}")

    def expect(self, condition, where, message):
        if not condition:
            self.add(where, message)
        return condition


def render(kubectl, source_dir, path):
    """Returns the objects `kubectl kustomize path` renders, or raises RuntimeError."""
    proc = subprocess.run([kubectl, "kustomize", os.path.join(source_dir, path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def workloads(objs):
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def containers(workload):
    return workload["spec"]["template"]["spec"]["containers"]


def role_of(workload):
    return pod_labels(workload).get(COMPONENT)


# ---------------------------------------------------------------------------------------------
def check_render(objs, where, fails):
    kinds = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o["metadata"]["name"])
    for kind in ("Namespace", "ServiceAccount", "StatefulSet", "Deployment", "Service", "ConfigMap",
                 "PodDisruptionBudget", "NetworkPolicy"):
        fails.expect(kind in kinds, where, f"renders no {kind}")
    roles = sorted(role_of(w) for w in workloads(objs))
    fails.expect(roles == sorted(ROLES), where, f"workload roles are {roles}, want {sorted(ROLES)}")
    for w in workloads(objs):
        if role_of(w) == "learner":
            fails.expect(w["kind"] == "StatefulSet" and w["spec"].get("replicas") == 1, where,
                         "the learner must be a StatefulSet of 1 replica")
            claims = [c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])]
            mounts = {m["name"]: m["mountPath"] for m in containers(w)[0].get("volumeMounts", [])}
            fails.expect(claims and all(c in mounts for c in claims), where,
                         "the learner needs a volumeClaimTemplate mounted in its container")
        else:
            fails.expect(w["kind"] == "Deployment", where, f"{name_of(w)}: workers and verifiers are Deployments")
    namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
    fails.expect(len(namespaces) == 1 and None not in namespaces, where,
                 f"every object must be in one namespace, got {namespaces}")
    dashboards = [o for o in objs if o["kind"] == "ConfigMap"
                  and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    fails.expect(len(dashboards) == 1, where, "want one ConfigMap labelled grafana_dashboard")
    # Every ConfigMap, Secret or claim a pod refers to exists in the same render.
    configmaps = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"}
    for w in workloads(objs):
        for v in w["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in v:
                fails.expect(v["configMap"]["name"] in configmaps, where,
                             f"{name_of(w)} mounts missing ConfigMap {v['configMap']['name']}")


# ---------------------------------------------------------------------------------------------
def container_ports(container):
    return container.get("ports", [])


def port_matches(target, ports):
    if isinstance(target, int):
        return any(p["containerPort"] == target for p in ports)
    return any(p.get("name") == target for p in ports)


def check_services(objs, where, fails):
    ws = workloads(objs)
    for svc in (o for o in objs if o["kind"] == "Service"):
        selector = svc["spec"].get("selector", {})
        selected = [w for w in ws if selects(selector, pod_labels(w))]
        if not fails.expect(selected, where, f"{name_of(svc)} selector {selector} matches no workload's pods"):
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for w in selected:
                ports = [p for c in containers(w) for p in container_ports(c)]
                fails.expect(port_matches(target, ports), where,
                             f"{name_of(svc)} port {port.get('name')} targets {target!r}, "
                             f"which no container of {name_of(w)} exposes")
        if svc["spec"].get("clusterIP") == "None":
            pass  # Headless: DNS returns the ready pods (client-side balancing).
    for sts in (w for w in ws if w["kind"] == "StatefulSet"):
        gov = [s for s in objs if s["kind"] == "Service" and s["metadata"]["name"] == sts["spec"]["serviceName"]]
        fails.expect(gov and gov[0]["spec"].get("clusterIP") == "None", where,
                     f"{name_of(sts)} needs its headless governing Service {sts['spec']['serviceName']}")
    reward = [s for s in objs if s["kind"] == "Service" and s["metadata"]["name"] == "sfpo-reward"]
    fails.expect(reward and reward[0]["spec"].get("clusterIP") == "None", where,
                 "the sfpo-reward Service must be headless for client-side round_robin")
    for pm in (o for o in objs if o["kind"] == "PodMonitor"):
        selected = [w for w in ws if selects(pm["spec"]["selector"].get("matchLabels", {}), pod_labels(w))]
        fails.expect(sorted(role_of(w) for w in selected) == sorted(ROLES), where,
                     f"{name_of(pm)} selects {[name_of(w) for w in selected]}, want every role")
        for ep in pm["spec"]["podMetricsEndpoints"]:
            for w in selected:
                ports = [p for c in containers(w) for p in container_ports(c)]
                fails.expect(port_matches(ep["port"], ports), where,
                             f"{name_of(pm)} scrapes port {ep['port']!r}, absent from {name_of(w)}")
    for hpa in (o for o in objs if o["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        fails.expect(any(w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"] for w in ws), where,
                     f"{name_of(hpa)} targets missing {ref['kind']}/{ref['name']}")
        target = [w for w in ws if w["metadata"]["name"] == ref["name"]]
        if target:
            fails.expect("replicas" not in target[0]["spec"], where,
                         f"{name_of(target[0])} sets spec.replicas although {name_of(hpa)} scales it")
    for pdb in (o for o in objs if o["kind"] == "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        fails.expect(any(selects(sel, pod_labels(w)) for w in ws), where,
                     f"{name_of(pdb)} selects no workload's pods")
    rollout = [w for w in ws if role_of(w) == "rollout"]
    has_hpa = any(o["kind"] == "HorizontalPodAutoscaler" for o in objs)
    fails.expect(rollout and (has_hpa or rollout[0]["spec"].get("replicas", 0) >= 1), where,
                 "rollout workers need an HPA or an explicit replica count")


# ---------------------------------------------------------------------------------------------
def dockerfile_uid(source_dir):
    with open(os.path.join(source_dir, "deploy/Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users:
        return None
    uid = users[-1].split(":")[0]
    return int(uid) if uid.isdigit() else uid


def check_security(objs, where, fails, source_dir):
    uid = dockerfile_uid(source_dir)
    fails.expect(isinstance(uid, int) and uid != 0, where,
                 f"deploy/Dockerfile must end with a numeric non-root USER, got {uid!r}")
    for w in workloads(objs):
        n = name_of(w)
        spec = w["spec"]["template"]["spec"]
        psc = spec.get("securityContext", {})
        fails.expect(psc.get("runAsNonRoot") is True, where, f"{n}: pod securityContext.runAsNonRoot must be true")
        fails.expect(psc.get("runAsUser") not in (None, 0), where, f"{n}: pod runAsUser must be set and non-zero")
        fails.expect(psc.get("runAsUser") == uid, where,
                     f"{n}: runAsUser {psc.get('runAsUser')} differs from the Dockerfile's USER {uid}")
        fails.expect(spec.get("automountServiceAccountToken") is False, where,
                     f"{n}: the pods call no API; set automountServiceAccountToken: false")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        annotations = w["spec"]["template"]["metadata"].get("annotations", {})
        fails.expect(annotations.get("prometheus.io/scrape") == "true", where,
                     f"{n}: missing annotation prometheus.io/scrape: \"true\"")
        for c in spec["containers"]:
            cn = f"{n}/{c['name']}"
            csc = c.get("securityContext", {})
            fails.expect(csc.get("allowPrivilegeEscalation") is False, where, f"{cn}: allowPrivilegeEscalation must be false")
            fails.expect(csc.get("readOnlyRootFilesystem") is True, where, f"{cn}: readOnlyRootFilesystem must be true")
            fails.expect("ALL" in csc.get("capabilities", {}).get("drop", []), where, f"{cn}: must drop ALL capabilities")
            fails.expect(csc.get("runAsUser", psc.get("runAsUser")) != 0 and csc.get("runAsNonRoot", True), where,
                         f"{cn}: a container may not run as root")
            fails.expect(not csc.get("privileged", False), where, f"{cn}: must not be privileged")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            fails.expect(tmp and "emptyDir" in volumes.get(tmp[0]["name"], {}), where,
                         f"{cn}: needs an emptyDir at /tmp (read-only root filesystem)")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    fails.expect(r in res.get(kind, {}), where, f"{cn}: no resources.{kind}.{r}")
            grpc_ports = [p["containerPort"] for p in container_ports(c) if p.get("name") == "grpc"]
            fails.expect(len(grpc_ports) == 1, where, f"{cn}: needs one container port named grpc")
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe, {})
                ok = "grpc" in p and grpc_ports and p["grpc"].get("port") == grpc_ports[0]
                fails.expect(ok, where, f"{cn}: {probe} must be a gRPC health probe on port {grpc_ports}")
            metrics = [p["containerPort"] for p in container_ports(c) if p.get("name") == "metrics"]
            fails.expect(len(metrics) == 1 and annotations.get("prometheus.io/port") == str(metrics[0]), where,
                         f"{cn}: prometheus.io/port {annotations.get('prometheus.io/port')!r} must name its metrics port {metrics}")


# ---------------------------------------------------------------------------------------------
def expand_env(value, env):
    """Expands $(VAR) as the kubelet does: known variables replaced, $$ escapes a $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def container_env(workload, container, namespace):
    pod_name = workload["metadata"]["name"] + ("-0" if workload["kind"] == "StatefulSet" else "-5d9c7b-x2x7q")
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = expand_env(e["value"], env)
        elif "fieldRef" in e.get("valueFrom", {}):
            field = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}.get(field, "x")
        elif "resourceFieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = "2"
    return env


class SfpoRunner:
    """Runs `sfpo ARGS` (each distinct command line once; LibTorch makes a start take ~1 s),
    two at a time."""

    def __init__(self, sfpo):
        self.sfpo = sfpo
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.cache = {}

    def submit(self, args, files=()):
        """Returns a future of (exit status, last line of stderr). `files` whose content is
        part of the key (the same arguments over different config files are different runs)."""
        key = (tuple(args), tuple(open(f, encoding="utf-8").read() for f in files))
        if key not in self.cache:
            self.cache[key] = self.pool.submit(self._run, list(args))
        return self.cache[key]

    def _run(self, args):
        proc = subprocess.run([self.sfpo] + args, capture_output=True, text=True, timeout=60)
        return proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]


def check_binary_refuses_bad_input(runner, fails):
    """The args check is only as good as the binary's --check: make sure it refuses bad input."""
    for args in (["learner", "--no-such-flag", "--check"], ["learner", "--set", "run.no_such_key=1", "--check"]):
        rc, _ = runner.submit(args).result()
        fails.expect(rc != 0, "sfpo", f"`sfpo {' '.join(args)}` must fail")


def check_args(objs, where, fails, runner, tmp_root):
    """Queues the checks; returns [(future, where, message-prefix)] to wait on."""
    pending = []
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    staged = {}
    for name, cm in configmaps.items():
        # ConfigMap names carry a content hash: the same name is the same content.
        d = os.path.join(tmp_root, name)
        os.makedirs(d, exist_ok=True)
        for key, value in cm.get("data", {}).items():
            with open(os.path.join(d, key), "w", encoding="utf-8") as f:
                f.write(value)
        staged[name] = d
    # Every run config (a ConfigMap with config.yaml) loads on its own.
    run_configs = [n for n, cm in configmaps.items() if "config.yaml" in cm.get("data", {})]
    fails.expect(run_configs, where, "no ConfigMap holds a config.yaml run config")
    for name in run_configs:
        path = os.path.join(staged[name], "config.yaml")
        pending.append((runner.submit(["learner", "--config", path, "--check"], [path]), where,
                        f"ConfigMap {name} config.yaml does not load"))

    namespace = next(o["metadata"]["namespace"] for o in objs if o["kind"] in WORKLOAD_KINDS)
    for w in workloads(objs):
        volumes = {v["name"]: v for v in w["spec"]["template"]["spec"].get("volumes", [])}
        for c in containers(w):
            cn = f"{name_of(w)}/{c['name']}"
            env = container_env(w, c, namespace)
            args = [expand_env(a, env) for a in c.get("command", [])[1:] + c.get("args", [])]
            unresolved = [a for a in args if "$(" in a]
            fails.expect(not unresolved, where, f"{cn}: unresolved variables in {unresolved}")
            fails.expect(args and args[0] == role_of(w), where,
                         f"{cn}: first argument {args[:1]} should be its role {role_of(w)}")
            # Point paths under ConfigMap mounts at the staged copies.
            files = []
            for m in c.get("volumeMounts", []):
                cm = volumes.get(m["name"], {}).get("configMap")
                if cm:
                    prefix = m["mountPath"].rstrip("/") + "/"
                    args = [a.replace(prefix, staged[cm["name"]] + "/") for a in args]
                    files += [os.path.join(staged[cm["name"]], k) for k in configmaps[cm["name"]].get("data", {})]
            pending.append((runner.submit(args + ["--check"], files), where,
                            f"{cn}: `sfpo {' '.join(args)} --check` failed"))
    return pending


# ---------------------------------------------------------------------------------------------
def peer_roles(peer, policy_namespace):
    """The sfpo roles, or 'prometheus'/'dns', a NetworkPolicy peer admits."""
    if "ipBlock" in peer:
        return {"ipBlock:" + peer["ipBlock"].get("cidr", "?")}
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    if ns_sel is not None:
        ns = ns_sel.get("matchLabels", {}).get("kubernetes.io/metadata.name")
        labels = (pod_sel or {}).get("matchLabels", {})
        if ns == "monitoring" and labels.get("app.kubernetes.io/name") == "prometheus":
            return {"prometheus"}
        if ns == "kube-system" and labels.get("k8s-app") == "kube-dns":
            return {"dns"}
        return {f"namespace:{ns or 'ANY'}"}
    labels = (pod_sel or {}).get("matchLabels", {})
    return {r for r in ROLES if selects(labels, {"app.kubernetes.io/name": "sfpo", COMPONENT: r})} or (
        set(ROLES) if not labels else set())


def check_network(objs, where, fails):
    pols = [o for o in objs if o["kind"] == "NetworkPolicy"]
    namespace = next(o["metadata"]["namespace"] for o in objs if o["kind"] in WORKLOAD_KINDS)
    pod_role_labels = {r: {"app.kubernetes.io/name": "sfpo", COMPONENT: r} for r in ROLES}
    isolated_in, isolated_out = set(), set()
    allowed = set()  # (source, destination, port, protocol)
    for p in pols:
        sel = p["spec"]["podSelector"].get("matchLabels", {})
        targets = [r for r in ROLES if selects(sel, pod_role_labels[r]) or not sel]
        types = p["spec"].get("policyTypes", ["Ingress"])
        for r in targets:
            if "Ingress" in types:
                isolated_in.add(r)
            if "Egress" in types:
                isolated_out.add(r)
        for rule in p["spec"].get("ingress", []):
            srcs = set().union(*[peer_roles(x, namespace) for x in rule.get("from", [])]) if rule.get("from") else {"ANY"}
            for port in rule.get("ports", [{"port": "ANY"}]):
                for r in targets:
                    for s in srcs:
                        allowed.add(("in", s, r, port.get("port"), port.get("protocol", "TCP")))
        for rule in p["spec"].get("egress", []):
            dsts = set().union(*[peer_roles(x, namespace) for x in rule.get("to", [])]) if rule.get("to") else {"ANY"}
            for port in rule.get("ports", [{"port": "ANY"}]):
                for r in targets:
                    for d in dsts:
                        allowed.add(("out", r, d, port.get("port"), port.get("protocol", "TCP")))
    fails.expect(isolated_in == set(ROLES) and isolated_out == set(ROLES), where,
                 f"every pod must be isolated both ways (ingress: {sorted(isolated_in)}, egress: {sorted(isolated_out)})")
    want = {
        ("in", "rollout", "learner", 50051, "TCP"),
        ("in", "rollout", "reward", 50052, "TCP"),
        ("in", "prometheus", "learner", 9090, "TCP"),
        ("in", "prometheus", "rollout", 9091, "TCP"),
        ("in", "prometheus", "reward", 9092, "TCP"),
        ("out", "rollout", "learner", 50051, "TCP"),
        ("out", "rollout", "reward", 50052, "TCP"),
        ("out", "rollout", "dns", 53, "UDP"),
        ("out", "rollout", "dns", 53, "TCP"),
    }
    extra, missing = allowed - want, want - allowed
    fails.expect(not extra, where, f"NetworkPolicies allow flows outside the design: {sorted(map(str, extra))}")
    fails.expect(not missing, where, f"NetworkPolicies block flows of the design: {sorted(map(str, missing))}")
    # The ports the policies open are the ones the containers listen on.
    for w in workloads(objs):
        ports = {p["containerPort"] for c in containers(w) for p in container_ports(c)}
        opened = {a[3] for a in allowed if a[0] == "in" and a[2] == role_of(w)}
        fails.expect(opened <= ports, where, f"{name_of(w)}: policies open {sorted(opened - ports)} it does not listen on")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--sfpo", help="the sfpo binary (for the args check)")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--kustomization", action="append",
                        help="a kustomization directory relative to --source-dir (default: base and every overlay)")
    parser.add_argument("--skip-binary-sanity", action="store_true",
                        help="args: do not re-prove that sfpo --check refuses bad flags (the self-test)")
    parser.add_argument("check", choices=["render", "services", "security", "args", "network"])
    opts = parser.parse_args()
    fails = Failures()
    runner = SfpoRunner(opts.sfpo) if opts.check == "args" else None
    if opts.check == "args" and not opts.sfpo:
        parser.error("args needs --sfpo")
    pending = []
    with tempfile.TemporaryDirectory() as tmp_root:
        if runner and not opts.skip_binary_sanity:
            check_binary_refuses_bad_input(runner, fails)
        for path in opts.kustomization or KUSTOMIZATIONS:
            try:
                objs = render(opts.kubectl, opts.source_dir, path)
            except (RuntimeError, FileNotFoundError, yaml.YAMLError) as e:
                fails.add(path, str(e))
                continue
            if opts.check == "render":
                check_render(objs, path, fails)
            elif opts.check == "services":
                check_services(objs, path, fails)
            elif opts.check == "security":
                check_security(objs, path, fails, opts.source_dir)
            elif opts.check == "args":
                pending += check_args(objs, path, fails, runner, tmp_root)
            elif opts.check == "network":
                check_network(objs, path, fails)
        for future, where, message in pending:
            rc, err = future.result()
            fails.expect(rc == 0, where, f"{message} (exit {rc}): {err}")
    for m in fails.messages:
        print("FAIL", m)
    if not fails.messages:
        print(f"OK: {opts.check} on {', '.join(opts.kustomization or KUSTOMIZATIONS)}")
    return 1 if fails.messages else 0


if __name__ == "__main__":
    sys.exit(main())
