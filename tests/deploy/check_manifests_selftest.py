#!/usr/bin/python3
"""Proves that check_manifests.py catches what it claims to: each case copies deploy/ to a
temporary directory, breaks one thing, and expects the named check to fail with a message
naming the problem (and the unbroken copy to pass).

Usage: check_manifests_selftest.py --source-dir DIR --sfpo BIN [--kubectl KUBECTL]
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (check, file under deploy/, text to replace, replacement, expected substring of the failure).
# The cases of one check are applied to one copy together (sfpo takes about a second to start,
# so this keeps the test short); each must still be reported with its own message. The two
# render cases each break the render on their own.
CASES = [
    ("render", "k8s/base/kustomization.yaml", "  - reward.yaml\n", "  - reward.yaml\n  - missing.yaml\n",
     "kubectl kustomize"),
    ("render", "k8s/base/kustomization.yaml", "  - reward.yaml\n", "",
     "workload roles are"),
    ("services", "k8s/base/reward.yaml", "      targetPort: grpc\n", "      targetPort: grpcx\n",
     "targets 'grpcx'"),
    ("services", "k8s/base/reward.yaml", "      targetPort: metrics\n", "      targetPort: 9999\n",
     "targets 9999"),
    ("services", "k8s/base/learner.yaml",
     "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: sfpo\n    app.kubernetes.io/component: learner\n",
     "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: sfpo\n    app.kubernetes.io/component: lerner\n",
     "matches no workload"),
    ("services", "k8s/base/reward.yaml", "  clusterIP: None\n", "",
     "sfpo-reward Service must be headless"),
    ("security", "k8s/base/rollout.yaml", "            readOnlyRootFilesystem: true\n", "",
     "readOnlyRootFilesystem must be true"),
    ("security", "k8s/base/reward.yaml", "          readinessProbe:\n            grpc:\n              port: 50052\n",
     "          readinessProbe:\n            grpc:\n              port: 50099\n", "readinessProbe must be a gRPC"),
    ("security", "k8s/base/learner.yaml", "        runAsNonRoot: true\n", "        runAsNonRoot: false\n",
     "runAsNonRoot must be true"),
    ("security", "k8s/base/learner.yaml", "              drop: [\"ALL\"]\n", "              drop: [\"NET_RAW\"]\n",
     "must drop ALL"),
    ("security", "Dockerfile", "USER 10001:10001\n", "USER 0\n", "numeric non-root USER"),
    ("security", "k8s/base/rollout.yaml", "        prometheus.io/port: \"9091\"\n", "        prometheus.io/port: \"9090\"\n",
     "must name its metrics port"),
    ("args", "k8s/base/reward.yaml", "            - --metrics-listen=0.0.0.0:9092\n",
     "            - --metrics-listen=0.0.0.0:9092\n            - --no-such-flag\n", "--no-such-flag --check` failed"),
    ("args", "k8s/base/config.yaml", "  algorithm: sfpo\n", "  algorithm: ppo\n", "does not load"),
    ("args", "k8s/base/rollout.yaml", "            - --worker-id=$(POD_NAME)\n",
     "            - --worker-id=$(NO_SUCH_VAR)\n", "unresolved variables"),
    ("network", "k8s/base/networkpolicy.yaml",
     "  policyTypes: [Ingress]\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n"
     "              app.kubernetes.io/name: sfpo\n              app.kubernetes.io/component: rollout\n"
     "      ports:\n        - port: 50051\n",
     "  policyTypes: [Ingress]\n  ingress:\n    - ports:\n        - port: 50051\n",
     "outside the design"),
    ("network", "k8s/base/networkpolicy.yaml", "        - port: 50052\n          protocol: TCP\n",
     "        - port: 50054\n          protocol: TCP\n", "block flows of the design"),
    ("network", "k8s/base/networkpolicy.yaml", "  policyTypes: [Ingress, Egress]\n---", "  policyTypes: [Ingress]\n---",
     "isolated both ways"),
]


def run_check(opts, root, check):
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "check_manifests.py"), "--source-dir", root, "--sfpo", opts.sfpo,
         "--kubectl", opts.kubectl, "--kustomization", "deploy/k8s/base", "--skip-binary-sanity", check],
        capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--sfpo", required=True)
    parser.add_argument("--kubectl", default="kubectl")
    opts = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        pristine = os.path.join(tmp, "pristine")
        shutil.copytree(os.path.join(opts.source_dir, "deploy"), os.path.join(pristine, "deploy"))
        # The unbroken copy passes (args is left to the args test: it starts sfpo many times).
        for check in sorted({c[0] for c in CASES} - {"args"}):
            rc, out = run_check(opts, pristine, check)
            if rc != 0:
                failures.append(f"unbroken copy fails {check}:\n{out}")
        groups = {}
        for i, case in enumerate(CASES):
            key = f"render{i}" if case[0] == "render" else case[0]
            groups.setdefault(key, []).append((i, case))

        def run_group(key, cases):
            root = os.path.join(tmp, key)
            shutil.copytree(os.path.join(pristine, "deploy"), os.path.join(root, "deploy"))
            problems = []
            for i, (check, rel, old, new, expected) in cases:
                path = os.path.join(root, "deploy", rel)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if old not in text:
                    problems.append(f"case {i}: {rel} no longer contains {old!r}; update the self-test")
                    continue
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text.replace(old, new, 1))
            rc, out = run_check(opts, root, cases[0][1][0])
            for i, (check, rel, old, new, expected) in cases:
                if rc == 0 or expected not in out:
                    problems.append(f"case {i} ({check}, {rel}: {old.strip()!r} -> {new.strip()!r}): "
                                    f"want a failure mentioning {expected!r}, got rc={rc}:\n{out}")
            return problems

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for problems in pool.map(run_group, groups.keys(), groups.values()):
                failures += problems
    for f in failures:
        print("FAIL", f)
    if not failures:
        print(f"OK: {len(CASES)} broken manifests caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
