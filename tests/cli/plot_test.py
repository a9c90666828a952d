#!/usr/bin/python3
"""Black-box tests of `sfpo plot` on synthetic step logs.

Usage: plot_test.py SFPO_BINARY [unittest args]
"""
import json
import math
import os
import stat
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
SFPO = None


def write_run(root, name, steps=20, eval_every=5, speed=1.0, accuracy=True):
    """A run directory with a plausible steps.jsonl; returns its path."""
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "steps.jsonl"), "w", encoding="utf-8") as f:
        for s in range(1, steps + 1):
            line = {"step": s, "policy_version": s, "rollouts_total": 64 * s, "wallclock_s": 30.0 * s / speed,
                    "reward_mean": 1 - math.exp(-speed * s / 10), "entropy": 0.9, "sfpo_active": 1,
                    "seconds": {"wait_batch": 0.5, "fast": 1.0}}
            if accuracy and s % eval_every == 0:
                line["accuracy"] = 0.8 * (1 - math.exp(-speed * s / 12))
                line["accuracy_greedy"] = line["accuracy"] + 0.02
            f.write(json.dumps(line) + "\n")
    return d


def run_plot(*args, env=None):
    return subprocess.run([SFPO, "plot", *args], capture_output=True, text=True, timeout=60, env=env)


def panels(svg_path):
    """{panel id: [polyline elements]} of an SVG written by sfpo plot (parsed as XML)."""
    root = ET.parse(svg_path).getroot()
    assert root.tag == SVG + "svg", root.tag
    return {g.get("id"): g.findall(SVG + "polyline") for g in root.iter(SVG + "g") if g.get("class") == "panel"}


def points(polyline):
    return [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]


class PlotOfThreeRunsTest(unittest.TestCase):
    """One plot of three runs (sfpo starts in about a second, so the checks share it): a slow
    and a fast run evaluated every 5 of 20 steps, and a run never evaluated."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        runs = [write_run(cls.tmp.name, "grpo", speed=1.0), write_run(cls.tmp.name, "sfpo", speed=2.0),
                write_run(cls.tmp.name, "unevaluated", speed=1.5, accuracy=False)]
        cls.out = os.path.join(cls.tmp.name, "curves.svg")
        cls.proc = run_plot(*runs, "-o", cls.out)
        cls.panels = panels(cls.out) if cls.proc.returncode == 0 else {}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def lines(self, panel):
        return {l.get("data-run"): l for l in self.panels[panel]}

    def test_writes_svg_that_parses_with_four_panels(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertIn("wrote", self.proc.stderr)
        self.assertEqual(sorted(self.panels), ["panel-accuracy-rollouts", "panel-accuracy-wallclock",
                                               "panel-reward_mean-rollouts", "panel-reward_mean-wallclock"])

    def test_draws_one_polyline_per_run_in_each_reward_panel(self):
        for pid in ("panel-reward_mean-rollouts", "panel-reward_mean-wallclock"):
            lines = self.panels[pid]
            self.assertEqual([l.get("data-run") for l in lines], ["grpo", "sfpo", "unevaluated"], pid)
            self.assertEqual(len({l.get("stroke") for l in lines}), 3, f"{pid}: runs share a colour")

    def test_leaves_a_run_without_accuracy_out_of_the_accuracy_panels_only(self):
        for pid in ("panel-accuracy-rollouts", "panel-accuracy-wallclock"):
            self.assertEqual([l.get("data-run") for l in self.panels[pid]], ["grpo", "sfpo"], pid)

    def test_plots_every_step_for_reward_and_only_evaluated_steps_for_accuracy(self):
        self.assertEqual(len(points(self.lines("panel-reward_mean-rollouts")["grpo"])), 20)
        self.assertEqual(len(points(self.lines("panel-accuracy-wallclock")["grpo"])), 4)

    def test_maps_larger_values_right_and_up(self):
        pts = points(self.lines("panel-reward_mean-rollouts")["grpo"])
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        self.assertEqual(xs, sorted(xs))
        self.assertLess(xs[0], xs[-1])
        # Reward rises, and SVG's y axis points down.
        self.assertEqual(ys, sorted(ys, reverse=True))
        self.assertGreater(ys[0], ys[-1])

    def test_puts_the_faster_run_left_of_the_slower_one_against_wallclock_only(self):
        wall = self.lines("panel-reward_mean-wallclock")
        self.assertLess(points(wall["sfpo"])[-1][0], points(wall["grpo"])[-1][0])
        rollouts = self.lines("panel-reward_mean-rollouts")
        self.assertAlmostEqual(points(rollouts["sfpo"])[-1][0], points(rollouts["grpo"])[-1][0], places=2)


class PlotTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_draws_only_the_chosen_x_axis(self):
        run = write_run(self.root, "grpo")
        out = os.path.join(self.root, "curves.svg")
        self.assertEqual(run_plot(run, "-o", out, "--x", "rollouts").returncode, 0)
        self.assertEqual(sorted(panels(out)), ["panel-accuracy-rollouts", "panel-reward_mean-rollouts"])
        self.assertNotEqual(run_plot(run, "-o", out, "--x", "steps").returncode, 0)

    def test_escapes_run_names_and_tells_same_named_runs_apart(self):
        a = write_run(os.path.join(self.root, "x"), "a&b<c>")
        b = write_run(os.path.join(self.root, "y"), "a&b<c>")
        out = os.path.join(self.root, "curves.svg")
        proc = run_plot(a, b, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        names = [l.get("data-run") for l in panels(out)["panel-reward_mean-rollouts"]]
        self.assertEqual(names, [a, b])

    def test_names_the_file_and_line_of_a_malformed_line(self):
        run = write_run(self.root, "grpo")
        path = os.path.join(run, "steps.jsonl")
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        lines[2] = '{"step": 3, "rollouts_total": 192, "wallclock_s": \n'
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
        out = os.path.join(self.root, "curves.svg")
        proc = run_plot(run, "-o", out)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(f"{path}:3: not a JSON object", proc.stderr)
        self.assertFalse(os.path.exists(out))

    def test_names_a_missing_or_mistyped_field(self):
        run = write_run(self.root, "grpo")
        path = os.path.join(run, "steps.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            f.write('\n{"step": 21, "wallclock_s": 630, "reward_mean": 0.9}\n')
        proc = run_plot(run, "-o", os.path.join(self.root, "c.svg"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(f"{path}:22: no number 'rollouts_total'", proc.stderr)
        write_run(self.root, "grpo")  # rewrite cleanly
        with open(path, "a", encoding="utf-8") as f:
            f.write('{"step": 21, "rollouts_total": 1344, "wallclock_s": 630, "reward_mean": "high"}\n')
        proc = run_plot(run, "-o", os.path.join(self.root, "c.svg"))
        self.assertIn(f"{path}:21: 'reward_mean' is not a number", proc.stderr)

    def test_rejects_a_missing_log_an_empty_log_and_an_unknown_output_format(self):
        missing = os.path.join(self.root, "nothing-here")
        proc = run_plot(missing, "-o", os.path.join(self.root, "c.svg"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(os.path.join(missing, "steps.jsonl") + ": cannot open", proc.stderr)
        empty = os.path.join(self.root, "empty")
        os.makedirs(empty)
        open(os.path.join(empty, "steps.jsonl"), "w").close()
        proc = run_plot(empty, "-o", os.path.join(self.root, "c.svg"))
        self.assertIn("steps.jsonl: no steps", proc.stderr)
        run = write_run(self.root, "grpo")
        proc = run_plot(run, "-o", os.path.join(self.root, "c.pdf"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("must end in .svg or .png", proc.stderr)

    def test_says_what_png_needs_when_no_converter_is_on_path(self):
        run = write_run(self.root, "grpo")
        empty_bin = os.path.join(self.root, "bin")
        os.makedirs(empty_bin)
        out = os.path.join(self.root, "c.png")
        proc = run_plot(run, "-o", out, env={"PATH": empty_bin})
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("rsvg-convert", proc.stderr)
        self.assertIn("convert", proc.stderr)
        self.assertFalse(os.path.exists(out))

    def test_converts_to_png_with_rsvg_convert_from_path(self):
        run = write_run(self.root, "grpo")
        fake_bin = os.path.join(self.root, "bin")
        os.makedirs(fake_bin)
        log = os.path.join(self.root, "calls.txt")
        # A stand-in rsvg-convert: records its arguments, checks the SVG parses, writes "PNG".
        tool = os.path.join(fake_bin, "rsvg-convert")
        with open(tool, "w", encoding="utf-8") as f:
            f.write(f"""#!/usr/bin/python3
import sys, xml.etree.ElementTree as ET
args = sys.argv[1:]
open({log!r}, "w").write("\\n".join(args))
ET.parse(args[-1])
open(args[args.index("-o") + 1], "wb").write(b"\\x89PNG fake")
""")
        os.chmod(tool, os.stat(tool).st_mode | stat.S_IXUSR)
        out = os.path.join(self.root, "c.png")
        proc = run_plot(run, "-o", out, env={"PATH": fake_bin})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"\x89PNG fake")
        with open(log, encoding="utf-8") as f:
            args = f.read().split("\n")
        self.assertIn("-o", args)
        self.assertEqual(args[args.index("-o") + 1], out)
        self.assertFalse(os.path.exists(args[-1]), "the temporary SVG is left behind")


if __name__ == "__main__":
    SFPO = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
