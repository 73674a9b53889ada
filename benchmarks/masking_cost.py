"""What masking a notebook's printed output costs, side by side in one run, per kind of line:

- ``progress``: a training loop's lines (``epoch 3 step 41/1000000 loss=0.12345 validation_auc=0.8734``);
- ``csv``: a scores file's rows (``41,0.87345123451234,1``);
- ``quoted ids``: dict-like lines with a distinct quoted 32-hex id each, which detect-secrets' hex entropy
  detector finds (found over the whole text at once, each id then a secret masked wherever it occurs);
- ``repeated``: one line with a quoted id printed over and over (looked at once);
- ``keyword values``: ``api_key = "<random>"`` lines, each distinct: they name a credential, so each costs
  detect-secrets' per-line scan (``--keyword-lines`` lines, scaled to ``--lines``).

Each kind is masked as one text of ``--lines`` lines (what ``mask-secrets`` does with a kept file or a
notebook output), against the floor of replacing the environment's secret values alone (``str.replace``, the
cheapest exact-value pass), and a line at a time as the console of ``ds-pipelines run`` masks what a notebook
prints (``--console-lines`` lines). With ``--before REV`` the masking module of that git revision is timed
too, on ``--before-lines`` lines scaled to ``--lines`` (44c8e44: before the entropy detectors ran over the whole text).

The machine is shared and noisy: compare the ratios within one run.

    uv run python benchmarks/masking_cost.py [--lines 1000000] [--before 44c8e44 --before-lines 20000]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ds_pipelines.masking import Masker

REPO = Path(__file__).resolve().parent.parent
ENV = {"GITLAB_TOKEN": "glpat-" + "x7Kq2mP9vR4tL8wN3zY6", "DB_PASSWORD": "horse-battery-staple-42"}


def lines_of(kind: str, count: int, rng: random.Random) -> list[str]:
    if kind == "progress":
        return [f"epoch {i % 10} step {i}/{count} loss=0.{rng.randrange(10**5):05d} validation_auc=0.{rng.randrange(10**4):04d}"
                for i in range(count)]
    if kind == "csv":
        return [f"{i},{rng.random():.14f},{rng.randrange(2)}" for i in range(count)]
    if kind == "quoted ids":
        return [f"{{'row': {i}, 'run': '{rng.getrandbits(128):032x}'}}" for i in range(count)]
    if kind == "keyword values":
        return [f'api_key = "{rng.getrandbits(192):048x}"' for _ in range(count)]
    if kind == "repeated":
        return [f"{{'row': 0, 'run': '{rng.getrandbits(128):032x}'}}"] * count
    raise ValueError(kind)


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def masking_module_at(revision: str, scratch: Path):
    """``ds_pipelines/masking.py`` as it was at ``revision``, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{revision}:ds_pipelines/masking.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    file = scratch / f"masking_at_{revision}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # before it runs: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def console_cost(module, lines: list[str]) -> float:
    """Seconds per line for the console's masking, a line at a time (``LineMasker``, as ``ds-pipelines run``
    streams a notebook's output)."""
    console = module.LineMasker(module.Masker.from_env(ENV).env_values)
    return timed(lambda: [console(line) for line in lines]) / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--kinds", nargs="+", default=["progress", "csv", "quoted ids", "repeated", "keyword values"])
    parser.add_argument("--keyword-lines", type=int, default=20_000,
                        help="lines of the 'keyword values' kind timed (each costs a detect-secrets scan), "
                             "scaled to --lines")
    parser.add_argument("--console-lines", type=int, default=2_000, help="lines timed through the console's masking")
    parser.add_argument("--before", metavar="REV", help="also time the masking module of this git revision")
    parser.add_argument("--before-lines", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(0)
    masker = Masker.from_env(ENV)
    scratch = Path(tempfile.mkdtemp(prefix="masking-cost-"))
    before = masking_module_at(args.before, scratch) if args.before else None
    masker.mask("warm-up: detect-secrets' plugins load once 'a3f35f3b4aa60dbdf193a83672f1d004'")

    print(f"{'kind':<16}{'lines':>10}{'floor s':>10}{'masking s':>11}{'ratio':>8}{'us/line':>9}{'console us/line':>17}"
          + (f"{'before s':>12}{'before/now':>12}{'console before':>16}" if before else ""))
    for kind in args.kinds:
        # What costs a per-line scan is timed on fewer lines and scaled to --lines (marked *).
        timed_lines = min(args.lines, args.keyword_lines) if kind == "keyword values" else args.lines
        lines = lines_of(kind, timed_lines, rng)
        text = "\n".join(lines)
        scale = args.lines / timed_lines
        floor = timed(lambda text=text: [text.replace(value, "[MASKED]") for value in masker.env_values]) * scale
        now = timed(lambda text=text: masker.mask(text)) * scale
        console = console_cost(sys.modules["ds_pipelines.masking"], lines[:args.console_lines])
        row = (f"{kind:<16}{args.lines:>10,}{floor:>10.3f}{now:>10.2f}{'*' if scale > 1 else ' '}"
               f"{now / max(floor, 1e-9):>8.0f}{now / args.lines * 1e6:>9.1f}{console * 1e6:>17.0f}")
        if before:
            sample = "\n".join(lines[:args.before_lines])
            then = (timed(lambda sample=sample: before.Masker.from_env(ENV).mask(sample))
                    * args.lines / min(timed_lines, args.before_lines))
            row += f"{then:>11.1f}*{then / now:>12.1f}{console_cost(before, lines[:args.console_lines]) * 1e6:>16.0f}"
        print(row)
    print("* timed on fewer lines and scaled to --lines"
          + (f" (before: {args.before_lines:,} lines of each kind)" if before else ""))

if __name__ == "__main__":
    main()
