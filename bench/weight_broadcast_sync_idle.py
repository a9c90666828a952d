#!/usr/bin/python3
"""Idle fractions in synchronous mode during a short `sfpo local` run.

Runs `sfpo local` (learner + N workers + verifier on loopback) and reports
  - the learner's idle fraction waiting for a batch: sum(seconds.wait_batch) / sum(step time)
    over steps 2..N of the step log (step 1 also waits for start-up and is left out);
  - each worker's idle fraction waiting for weights: the growth of its
    sfpo_rollout_wait_weights_seconds_total over the wall time between the scrapes taken when
    step 1 and step N-1 appear in the step log.

Usage: weight_broadcast_sync_idle.py SFPO_BINARY [--steps N] [--set key=value ...]
The last line printed is one JSON object of figures.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request


def scrape(url, name):
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    m = re.search(r"^%s(?:\{[^}]*\})? ([-+0-9.eE]+|NaN)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def read_steps(path):
    steps = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    steps.append(json.loads(line))
    return steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--set", action="append", default=[])
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sfpo_idle_")
    endpoints = os.path.join(tmp, "endpoints.json")
    run_dir = os.path.join(tmp, "run")
    sets = ["run.output_dir=" + run_dir, "run.total_steps=%d" % opts.steps,
            "rollout.max_staleness=0"] + opts.set
    cmd = [opts.binary, "local", "--config",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "demo.yaml"),
           "--endpoints-file", endpoints]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while not os.path.exists(endpoints):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("sfpo local did not start:\n" + proc.stderr.read())
            time.sleep(0.05)
        with open(endpoints) as f:
            services = json.load(f)["services"]
        workers = [s["metrics"] for s in services if s["role"] == "rollout"]
        steps_path = os.path.join(run_dir, "steps.jsonl")

        def wait_for_step(n):
            while len(read_steps(steps_path)) < n:
                if proc.poll() is not None or time.time() > deadline:
                    sys.exit("the run ended before step %d:\n%s" % (n, proc.stderr.read()))
                time.sleep(0.01)
            return time.monotonic(), [scrape(u, "sfpo_rollout_wait_weights_seconds_total")
                                      for u in workers]

        t0, w0 = wait_for_step(1)
        t1, w1 = wait_for_step(opts.steps - 1)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = read_steps(steps_path)
    wait = sum(s["seconds"].get("wait_batch", 0) for s in steps[1:])
    total = steps[-1]["wallclock_s"] - steps[0]["wallclock_s"]
    stages = {}
    for s in steps[1:]:
        for k, v in s["seconds"].items():
            stages[k] = stages.get(k, 0) + v
    worker_fractions = [(b - a) / (t1 - t0) for a, b in zip(w0, w1)]
    figures = {
        "steps": len(steps),
        "learner_step_seconds_mean": total / (len(steps) - 1),
        "learner_idle_fraction_wait_batch": wait / total,
        "learner_stage_seconds_mean": {k: v / (len(steps) - 1) for k, v in sorted(stages.items())},
        "worker_idle_fraction_wait_weights": worker_fractions,
        "samples": steps[-1]["samples"],
        "config": sets,
    }
    print("learner: %.1f%% of step time waiting for a batch (%.3f s/step)" %
          (100 * figures["learner_idle_fraction_wait_batch"], figures["learner_step_seconds_mean"]))
    for i, f in enumerate(worker_fractions):
        print("worker %d: %.1f%% of wall time waiting for the next policy version" % (i, 100 * f))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
