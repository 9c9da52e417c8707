"""Mutation check: plant known bugs in a copy of the source and confirm the test suite catches each.

For every mutant, ``src/`` is copied to a temporary folder, one deliberate bug is written into the
copy (an exact text replacement), and the tests that guard that behaviour run against the copy
(``PYTHONPATH`` points at it; the tests themselves are the repository's). A mutant is *caught* when
those tests fail. Before the mutants, the same tests run once on the unmodified source, which must
pass, or a "caught" would mean nothing.

    python benchmarks/mutants.py                    # all mutants, markdown table on stdout
    python benchmarks/mutants.py --only kl-weight-dropped --json mutants.json

Exit status 1 when a mutant is missed, when a replacement no longer applies (the source changed:
update the mutant), or when the baseline fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from spadekit.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    file: str
    """Path under ``src/spadekit``."""
    replacements: tuple[tuple[str, str], ...]
    """(original text, buggy text); each original must occur exactly once."""
    tests: tuple[str, ...]
    """pytest node ids that must catch it."""


MUTANTS = (
    Mutant(
        "grad-sum-not-mean",
        "gradients summed over processes instead of averaged (both losses scaled by the world size)",
        "training/trainer.py",
        (
            ("self.scaler.scale(g_total / accum).backward()", "self.scaler.scale(g_total * self.env.world_size / accum).backward()"),
            (
                "discriminator_losses(batch, carry)\n                self.scaler.scale(d_total / accum).backward()",
                "discriminator_losses(batch, carry)\n                self.scaler.scale(d_total * self.env.world_size / accum).backward()",
            ),
        ),
        ("tests/test_training_ddp.py::test_all_reduced_gradients_equal_one_process_gradients",),
    ),
    Mutant(
        "kl-weight-dropped",
        "the KL term without its weight lambda_kld",
        "objective.py",
        (("kl_loss(mu, logvar) * (self.losses.lambda_kld * self.kl_scale * share)", "kl_loss(mu, logvar) * self.kl_scale * share"),),
        ("tests/test_losses.py::test_objective_terms_are_weighted_losses_and_total_is_their_sum",),
    ),
    Mutant(
        "ema-not-restored",
        "resume does not restore the EMA generator",
        "training/trainer.py",
        (('self.ema.load_state_dict(state["ema"], updates=int(state["step"]))', "pass"),),
        ("tests/test_training_resume.py::test_resume_mid_epoch_continues_exactly",),
    ),
    Mutant(
        "spectral-norm-no-iteration",
        "spectral norm skips its power iteration in training-mode forward passes",
        "models/blocks.py",
        (
            (
                "    return spectral_norm(module) if enabled else module",
                "    if not enabled:\n        return module\n    module = spectral_norm(module)\n"
                "    for hook in module._forward_pre_hooks.values():\n        hook.n_power_iterations = 0\n    return module",
            ),
        ),
        ("tests/test_official_parity.py::test_generator_eval_and_train_forward",),
    ),
    Mutant(
        "label-id-shifted",
        "class id k lands in one-hot channel k+1",
        "data/labels.py",
        (("semantics.scatter_(1, label, 1.0)", "semantics.scatter_(1, (label + 1) % channels, 1.0)"),),
        ("tests/test_official_parity.py::test_semantics_match_official_preprocessing",),
    ),
    Mutant(
        "dontcare-channel-dropped",
        "the don't-care channel is left empty",
        "data/labels.py",
        (
            (
                "semantics.scatter_(1, label, 1.0)",
                "semantics.scatter_(1, label, 1.0)\n    if contain_dontcare:\n        semantics[:, label_nc] = 0",
            ),
        ),
        ("tests/test_official_parity.py::test_semantics_match_official_preprocessing",),
    ),
    Mutant(
        "fast-gamma-beta-swapped",
        "the fast path's SPADE uses beta as the scale and gamma as the shift",
        "fast.py",
        (("gamma, beta = self.affine(hidden).chunk(2, dim=1)", "beta, gamma = self.affine(hidden).chunk(2, dim=1)"),),
        ("tests/test_fast.py::test_fast_generator_matches_plain", "tests/test_official_parity.py::test_fast_path_reproduces_official_eval_output"),
    ),
    Mutant(
        "studio-ignores-seed",
        "the studio synthesizes with seed 0 whatever the request says",
        "studio/app.py",
        (
            ("worker.run_batched(plain_syntheses, (ids, seed))", "worker.run_batched(plain_syntheses, (ids, 0))"),
            ("images = pipeline(ids, style=style, seed=seed,", "images = pipeline(ids, style=style, seed=0,"),
        ),
        ("tests/test_studio_api.py::test_seed_reproduces_and_varies", "tests/test_studio_api.py::test_response_is_the_pipeline_image_byte_for_byte"),
    ),
)


def copy_source(destination: Path) -> Path:
    src = destination / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return src


def apply(mutant: Mutant, src: Path) -> str | None:
    """Write the bug into the copy; returns why it cannot be applied, or None."""
    path = src / "spadekit" / mutant.file
    text = path.read_text()
    for original, buggy in mutant.replacements:
        count = text.count(original)
        if count != 1:
            return f"{mutant.file}: the text to replace occurs {count} times (the source changed; update the mutant)"
        text = text.replace(original, buggy)
    path.write_text(text)
    return None


def run_tests(src: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired:
        return -1, "timed out", time.perf_counter() - start


def first_failure(output: str) -> tuple[str, str]:
    """(first failing test, the first line of its error): shows the bug was caught by an assertion."""
    test = re.search(r"^FAILED (.+?)(?: - .*)?$", output, re.M)
    error = re.search(r"^E +(.+)$", output, re.M)
    return (test.group(1) if test else "", error.group(1).strip()[:90] if error else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", metavar="NAME", help="run these mutants only")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on the unmodified source")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run (default 600)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or []) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}; choose from {', '.join(m.name for m in MUTANTS)}")

    results, problems = [], 0
    with tempfile.TemporaryDirectory(prefix="spadekit-mutants-") as tmp:
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code, output, seconds = run_tests(copy_source(Path(tmp) / "baseline"), tests, args.timeout)
            print(f"baseline (unmodified source, {len(tests)} test selections): {'pass' if code == 0 else 'FAIL'} in {seconds:.0f} s",
                  file=sys.stderr)
            if code != 0:
                print(output[-3000:], file=sys.stderr)
                return 1
        for mutant in chosen:
            src = copy_source(Path(tmp) / mutant.name)
            why = apply(mutant, src)
            if why is not None:
                results.append({"mutant": mutant.name, "bug": mutant.bug, "result": "not applied", "detail": why, "error": "",
                                "seconds": 0.0})
                problems += 1
                continue
            code, output, seconds = run_tests(src, mutant.tests, args.timeout)
            caught = code not in (0, -1)
            problems += not caught
            result = "caught" if caught else ("timed out" if code == -1 else "MISSED")
            test, error = first_failure(output)
            results.append({"mutant": mutant.name, "bug": mutant.bug, "result": result, "detail": test, "error": error,
                            "seconds": round(seconds, 1)})
            print(f"{mutant.name}: {result} ({seconds:.0f} s)", file=sys.stderr)

    print("| mutant | deliberate bug | result | first failing test: its error | seconds |")
    print("|---|---|---|---|---|")
    for r in results:
        error = r["error"].replace("|", "\\|")
        print(f"| `{r['mutant']}` | {r['bug']} | {r['result']} | `{r['detail']}`: {error} | {r['seconds']:.0f} |")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
