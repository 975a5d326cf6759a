"""The front-door documents: every relative link and #anchor points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "experiments/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of `markdown` (code blocks skipped)."""
    found, fenced = set(), False
    for line in markdown.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_anchors_follow_githubs_rule():
    doc = ROOT / "experiments" / "README.md"
    assert "mnist_sum_bis-the-last-to-reach-098" in anchors(doc)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_resolves(document):
    source = ROOT / document
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"{document}: " + "; ".join(broken)


def test_the_readmes_flagship_table_is_the_one_its_records_give():
    """The README's results table is `experiments/mnist_bar.py`'s, from the committed records:
    after new runs, `make study NAME=mnist-bar` rewrites both."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bar", ROOT / "experiments" / "mnist_bar.py")
    bar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bar)
    readme = (ROOT / "README.md").read_text()
    rows = bar.flagship_rows(bar.RESULTS)
    assert bar.with_readme_table(readme, rows) == readme
    with pytest.raises(ValueError, match="lacks the marks"):
        bar.with_readme_table("# a README without them", rows)


# --- No result figures in code -----------------------------------------------------------------
# The style guide (DomainBed/SubpopBench): a docstring says what the code does, the paper, the
# official code and how it differs from it; no seed-level accuracy in code. Findings belong in
# experiments/README.md.

MAX_RESULT_FIGURES = 5

# A figure: a decimal fraction in [0, 1] (0.978, .5, 0.9, 1.0: accuracies, scores, shares), a
# percentage (93%, 5 %), or a decimal ratio (1.25x, a measured speed-up).
FIGURE = re.compile(r"(?<![\w.\-])(?:\d+(?:\.\d+)?\s?%|\d+\.\d+x\b|\d*\.\d+(?![\w.]))")
# Words that name a setting, a rule or a definition. A figure with one of them among the three
# words (or integers) before it, after any earlier figure, is that setting's value, not a result;
# so is a figure that continues an exempt one's list ("grid (1, 0.7, 0.3)", "10 % to 50 %"). An
# identifier counts by its parts (`draws.MIX_RATE_RANGE`: rate, range). Case matters for the
# one-letter names C, K and r.
SETTING_WORDS = {
    "default", "defaults", "tolerance", "threshold", "within", "eta", "gamma", "ema", "r",
    "rate", "range", "bound", "weight", "temperature", "score", "scores", "keep", "keeping",
    "K", "C", "grid", "e.g",
}  # fmt: skip
# ...or a percentage that names an interval or a quantile (a 90% Wilson interval).
SETTING_AFTER = re.compile(r"\s*(Wilson|interval|quantile|confidence)\b")
TOKEN = re.compile(r"[A-Za-z_][\w.]*|\d+")
LIST_GAP = re.compile(r"[\s,;()]*(?:(?:to|and|or|\.\.\.)[\s,;()]*)?")


def _names_a_setting(token: str) -> bool:
    parts = {token.rstrip("."), *re.split(r"[._]", token)}
    return any(p in SETTING_WORDS or (len(p) > 1 and p.lower() in SETTING_WORDS) for p in parts)


def result_figures_in(text: str) -> list[tuple[int, str]]:
    """(offset, figure in context) for each result-like figure of one docstring or comment."""
    found, previous_end, previous_exempt = [], None, False
    for match in FIGURE.finditer(text):
        figure = match.group()
        if not figure.endswith(("%", "x")) and float(figure) > 1:
            continue  # versions (sklearn 1.8, Python 3.11), not scores
        since = max(0, match.start() - 80) if previous_end is None else previous_end
        exempt = (
            (previous_exempt and LIST_GAP.fullmatch(text, since, match.start()) is not None)
            or any(_names_a_setting(t) for t in TOKEN.findall(text[since : match.start()])[-3:])
            or (figure.endswith("%") and SETTING_AFTER.match(text, match.end()) is not None)
        )
        previous_end, previous_exempt = match.end(), exempt
        if not exempt:
            context = " ".join(text[max(0, match.start() - 40) : match.end() + 20].split())
            found.append((match.start(), f"{figure!r} in ...{context}..."))
    return found


def _blocks(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Comments on consecutive lines joined into one text, so a phrase may span lines."""
    blocks: list[tuple[int, str]] = []
    for number, text in lines:
        if blocks and number == blocks[-1][0] + blocks[-1][1].count("\n") + 1:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + "\n" + text)
        else:
            blocks.append((number, text))
    return blocks


def python_prose(source: str) -> list[tuple[int, str]]:
    """(first line, text) of every comment block and every bare string statement (docstrings)."""
    import ast
    import io
    import tokenize

    comments = [
        (token.start[0], token.string.lstrip("#"))
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    strings = [
        (node.lineno, node.value.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    return _blocks(comments) + strings


def yaml_prose(source: str) -> list[tuple[int, str]]:
    """(first line, text) of every YAML comment block: text after a `#` that starts a line or
    follows a blank; full-line comments on consecutive lines form one block."""
    full, inline = [], []
    for number, line in enumerate(source.splitlines(), 1):
        if comment := re.search(r"(?:^|\s)#(.*)", line):
            (full if line.lstrip().startswith("#") else inline).append((number, comment.group(1)))
    return _blocks(full) + inline


def result_figures(files: dict[str, str]) -> list[str]:
    """`path:line: figure in context` for every result-like figure in `files` (path: source)."""
    found = []
    for path, source in sorted(files.items()):
        prose = python_prose(source) if path.endswith(".py") else yaml_prose(source)
        for first, text in prose:
            for offset, figure in result_figures_in(text):
                found.append(f"{path}:{first + text.count(chr(10), 0, offset)}: {figure}")
    return sorted(found, key=lambda line: (line.split(":")[0], int(line.split(":")[1])))


def code_and_config_files() -> dict[str, str]:
    paths = sorted((ROOT / "hackrobust").rglob("*.py")) + sorted((ROOT / "conf").rglob("*.yaml"))
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


def test_the_figure_heuristic_tells_results_from_settings():
    results = [
        "On mnist_sum_bis it reached 0.978 over 3 seeds.",
        "agreeing on 93% of the rows",
        "keeping the memory made an epoch 1.25x faster",
        "(0.926 to 0.946 over 3 seeds)",
        "every head reads that blend (0.85).",
        "still separating at the default 10 epochs (seed 0: 0.909)",
        "the head scored 0.64 against a default of 0.8.",
    ]
    settings = [
        "The default, 0.05, is about two standard errors",
        "step size eta 0.01, whose gamma is 0.1",
        "each C of their grid\n(1, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)",
        "(a 90% Wilson interval), the 95% quantile",
        "K = 10 % ... 50 % of the groups; ema (e.g. 0.9); aux weight 1, r 0.5",
        "`draws.MIX_RATE_RANGE` (0.25 to 0.75); mix rate 0.5; a temperature of 0.5",
        "sklearn 1.8 deprecated `penalty`; Python 3.11; an 8x8 square of a 28x28 digit",
    ]
    assert [len(result_figures_in(t)) for t in results] == [1, 1, 1, 2, 1, 1, 1]
    assert [result_figures_in(t) for t in settings] == [[]] * len(settings)
    source = '"""Doc:\n0.91 here."""\nx = 0.5  # threshold 0.95, then 0.77\ny = "0.3"\n'
    assert result_figures({"m.py": source}) == [
        "m.py:2: '0.91' in ...Doc: 0.91 here....",
        "m.py:3: '0.77' in ...threshold 0.95, then 0.77...",
    ]
    config = "lr: 0.1  # reached 0.93\n# as the default\n# 0.5, it got 0.8 of the rows\n"
    assert result_figures({"c.yaml": config}) == [
        "c.yaml:1: '0.93' in ...reached 0.93...",
        "c.yaml:3: '0.8' in ...as the default 0.5, it got 0.8 of the rows...",
    ]


def test_docstrings_and_config_comments_carry_at_most_five_result_figures():
    """Results (accuracies, scores, measured speed-ups, "x seeds gave y") belong in
    experiments/README.md, not in docstrings, comments or config comments.

    The count is a heuristic, meant to be read by hand rather than gamed. It reads prose only:
    Python comments and docstrings (every bare string statement) under hackrobust/, and YAML
    comments under conf/; numbers written as code or config values are settings by construction
    and never counted. In that prose a result-like figure is a decimal fraction in [0, 1] (0.978,
    0.9, 1.0; larger decimals there are versions), a percentage, or a decimal ratio (1.25x). A
    figure is exempt as a setting, rule or definition when one of `SETTING_WORDS` (default,
    tolerance, threshold, eta, rate, weight, temperature, score, grid, e.g., ...) is among the
    three words before it, skipping other figures so a listed grid counts as one, or when it is
    a percentage naming an interval or a quantile ("a 90% Wilson interval"). It cannot see
    results written without such a figure ("right on 3 of 5", "6 seeds of 10", "it did better"),
    and it counts a setting phrased without a setting word ("keeping 90% (not 80%)"): reword it
    or let it use the small budget, which is there for such cases in files under other hands.
    """
    found = result_figures(code_and_config_files())
    assert len(found) <= MAX_RESULT_FIGURES, (
        f"{len(found)} result-like figures in docstrings/comments (at most "
        f"{MAX_RESULT_FIGURES}); move them to experiments/README.md:\n" + "\n".join(found)
    )


# --- Short functions, a short README ------------------------------------------------------------
# A function reads in one screen: a longer one is split into named helpers, one idea each. The
# entry point, hackrobust/train.py, reads top to bottom, so its functions are shorter still. The
# README is the user's manual; findings live in experiments/README.md.

MAX_FUNCTION_LINES = 60
MAX_TRAIN_FUNCTION_LINES = 40
MAX_README_LINES = 250


def long_functions(source: str, limit: int) -> list[tuple[int, str, int]]:
    """(line, name, length) of every function of `source` longer than `limit` lines, nested
    ones included; a function runs from its `def` to its last line (decorators not counted)."""
    import ast

    return [
        (node.lineno, node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_function_length_counts_nested_functions_and_not_decorators():
    source = "@decorator\ndef outer():\n    def inner():\n        return 1\n\n    return inner\n"
    assert long_functions(source, 4) == [(2, "outer", 5)]
    assert long_functions(source, 1) == [(2, "outer", 5), (3, "inner", 2)]


def test_every_function_is_short():
    train = ROOT / "hackrobust" / "train.py"
    found = []
    for path in sorted((ROOT / "hackrobust").rglob("*.py")):
        limit = MAX_TRAIN_FUNCTION_LINES if path == train else MAX_FUNCTION_LINES
        for line, name, length in long_functions(path.read_text(), limit):
            found.append(f"{path.relative_to(ROOT)}:{line}: {name} has {length} lines (> {limit})")
    assert not found, (
        f"functions longer than {MAX_FUNCTION_LINES} lines ({MAX_TRAIN_FUNCTION_LINES} in "
        "hackrobust/train.py); split them into named helpers:\n" + "\n".join(found)
    )


def test_the_readme_is_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): it is the user's manual; "
        "move findings to experiments/README.md"
    )
