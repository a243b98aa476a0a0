"""Registers the experiment sub-commands of `ammix`: demo, toy, sweep, report, analyze."""

from ammix.cli import register

from . import analyze, demo, report, sweep, toy

register("demo", "the toy comparison of the methods, offline, in minutes (--quick: under a minute)",
         demo.add_arguments, demo.run, description=demo.__doc__, accepts_overrides=True)
register("toy", "the paper's toy feature maps: 2-D features of each method, per setting",
         toy.add_arguments, toy.run, description=toy.__doc__, accepts_overrides=True)
register("sweep", "run a grid of (variant, seed) trainings as separate processes; resumable",
         sweep.add_arguments, sweep.run, description=sweep.__doc__)
register("report", "tables (mean ± std over seeds) and figures from a folder of runs",
         report.add_arguments, report.run, description=report.DESCRIPTION)
register("analyze", "the collapse metrics (analysis.json) of one finished run",
         analyze.add_arguments, analyze.run, description=analyze.DESCRIPTION)
