"""The README and ``--help`` agree with the command line: every flag the README names exists where
it is named, shared options behave the same in every command, and the help is self-contained.
Also the README's install notes (CPU-only PyTorch) and the demo folder kept out of git."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib

import pytest

from conftest import REPO_ROOT
from spadekit.cli import build_parser, main

README = (REPO_ROOT / "README.md").read_text()
OTHER_TOOLS_FLAGS = {"--max-restarts"}
"""Flags of other programs that the README names inline (torchrun's)."""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def all_commands() -> dict[str, argparse.ArgumentParser]:
    """'synthesize', 'toy', 'toy make', ... → their parsers (every node of the command tree)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        children = _subparsers(parser)
        if prefix:
            found[prefix] = parser
        for name, child in children.items():
            walk(f"{prefix} {name}".strip(), child)

    walk("", build_parser())
    return found


def command_uses(text: str) -> list[tuple[str, list[str]]]:
    """``spadekit <command> ... --flag`` uses in shell text: (command path, flags)."""
    text = re.sub(r"\\\n", " ", text)
    uses = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0]
        for part in re.split(r"&&|\|\||;", line):
            try:
                tokens = shlex.split(part)
            except ValueError:
                tokens = part.split()
            tokens = [t.strip("[]") for t in tokens]
            if "spadekit" not in tokens:
                continue
            rest = tokens[tokens.index("spadekit") + 1 :]
            parser, path = build_parser(), []
            while rest and rest[0] in _subparsers(parser):
                parser = _subparsers(parser)[rest[0]]
                path.append(rest.pop(0))
            uses.append((" ".join(path), [t.split("=", 1)[0] for t in rest if t.startswith("--")]))
    return uses


def readme_sections() -> list[tuple[str, str]]:
    """(heading, body) of every section of the README."""
    parts = re.split(r"^(#{1,4} .*)$", README, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, content) of every fenced code block."""
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                blocks.append((language, "\n".join(lines)))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def shell_blocks(text: str) -> list[str]:
    return [content for language, content in fenced_blocks(text) if language in ("", "bash", "sh", "shell")]


def strip_code(text: str) -> str:
    """``text`` without its fenced code blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            out.append(line)
    return "\n".join(out)


def test_the_readme_parser_sees_the_commands_it_should():
    uses = [use for block in shell_blocks(README) for use in command_uses(block)]
    commands = {command for command, _ in uses}
    assert {"synthesize", "train", "evaluate", "studio", "demo", "export", "bench", "toy make", "data check",
            "convert official"} <= commands
    assert ("evaluate", ["--model", "--preset", "--out"]) in uses


def test_every_flag_in_a_readme_command_exists_in_that_command():
    commands = all_commands()
    problems = []
    spans = [m.group(1) for m in re.finditer(r"`(spadekit [^`]+)`", README)]
    for text in shell_blocks(README) + spans:
        for command, flags in command_uses(text):
            if not command:
                continue
            assert command in commands, f"README runs `spadekit {command}`, which does not exist"
            known = commands[command]._option_string_actions
            problems += [f"spadekit {command} {flag}" for flag in flags if flag not in known]
    assert not problems, f"flags named in the README that the CLI rejects: {problems}"


def test_every_inline_flag_exists_in_a_command_of_its_section():
    """Prose like "`--fid-preprocessing pytorch-fid` uses ..." under Evaluation must name a flag of
    the section's commands (those its code blocks run), or of any command when it runs none."""
    commands = all_commands()
    every = set().union(*(p._option_string_actions for p in commands.values()))
    problems = []
    for heading, body in readme_sections():
        prose = strip_code(body)
        ran = {c for block in shell_blocks(body) for c, _ in command_uses(block) if c}
        allowed = set().union(*(commands[c]._option_string_actions for c in ran)) if ran else every
        for span in re.findall(r"`([^`]+)`", prose):
            if span.startswith(("spadekit ", "python ", "tensorboard ", "pip ", "torchrun ")):
                continue  # whole commands: checked above, or another program's
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span):
                if flag not in allowed and flag not in OTHER_TOOLS_FLAGS:
                    problems.append(f"{heading}: {flag}")
    assert not problems, problems


def test_device_defaults_to_auto_everywhere():
    with_device = {name: p for name, p in all_commands().items() if "--device" in p._option_string_actions}
    assert {"synthesize", "demo", "bench", "studio", "train", "evaluate", "toy segmenter"} <= set(with_device)
    for name, parser in with_device.items():
        assert parser._option_string_actions["--device"].default == "auto", name


REQUIRED = {
    "train": [],
    "synthesize": ["--model", "m", "--labels", "l", "--out", "o"],
    "evaluate": ["--model", "m", "--out", "o"],
    "convert official": ["DIR", "--out", "o"],
    "data check": ["ROOT"],
}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_set_takes_one_form_everywhere(command):
    parser = all_commands()[command]
    dest = parser._option_string_actions["--set"].dest
    one = parser.parse_args(REQUIRED[command] + ["--set", "data.a=1", "data.b=2"])
    two = parser.parse_args(REQUIRED[command] + ["--set", "data.a=1", "--set", "data.b=2"])
    assert getattr(one, dest) == getattr(two, dest) == ["data.a=1", "data.b=2"]


def test_help_is_complete_and_self_contained():
    top = _subparsers(build_parser())
    assert "toy-segmenter" not in top  # one canonical command: spadekit toy segmenter
    assert "segmenter" in _subparsers(top["toy"])
    for name, parser in all_commands().items():
        assert parser.description, f"spadekit {name} --help has no description"
        text = parser.format_help()
        assert "SPEC" not in text, f"spadekit {name} --help cites SPEC, a document users do not have"


def test_evaluate_accepts_what_the_readme_documents(tmp_path, capsys):
    # `--fid-preprocessing pytorch-fid` is parsed (the run then stops on the missing model, exit 2, no usage error).
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r.json"),
                 "--fid-preprocessing", "pytorch-fid", "--device", "cpu"]) == 2
    assert "no such model directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------- install notes and the demo folder


def test_readme_documents_the_cpu_only_torch_install_before_the_package():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for block in shell_blocks(quick_start) for line in block.splitlines()]
    cpu = next(i for i, line in enumerate(lines) if "--index-url https://download.pytorch.org/whl/cpu" in line)
    assert lines[cpu].startswith("pip install torch torchvision")
    assert any(line.startswith("pip install -e .") for line in lines[cpu + 1 :])
    # The default install stays plain PyPI torch: no CUDA-only pin that the CPU build would not satisfy.
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pins = [d for d in dependencies if re.match(r"torch(vision)?\b", d)]
    assert len(torch_pins) == 2 and not any("+cu" in d or "cuda" in d for d in torch_pins)


def test_the_demo_folder_of_the_quick_start_is_ignored_by_git():
    patterns = [line.strip() for line in (REPO_ROOT / ".gitignore").read_text().splitlines()]
    assert "/demo/" in patterns or "demo/" in patterns
    uses = [use for block in shell_blocks(README.split("## Quick start", 1)[1].split("\n## ", 1)[0])
            for use in command_uses(block)]
    assert ("demo", ["--out"]) in uses and "spadekit demo --out demo " in README
