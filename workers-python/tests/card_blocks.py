"""The model card's printed Python blocks, run as a user runs them: the placeholders `d` and `texts`
filled in, in a fresh interpreter that sees nothing but the unpacked artifact (makam blocked).
Every test of a downloaded artifact loads it this way, so no test keeps its own copy of a loader."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# Blocks makam in the loader's interpreter: the artifact must load with what it ships. Inside a
# function, so the block sees no name it did not import itself (`sys` included).
BLOCK_MAKAM = """\
def block_makam():
    import importlib.abc, sys
    class NoMakam(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("makam_worker", "makam", "makam_study"):
                raise ImportError(f"{name}: makam is not installed here")
    sys.meta_path.insert(0, NoMakam())
block_makam()
del block_makam
"""
PLACEHOLDERS = ('d = "path/to/unpacked/model"\n', 'texts = ["..."]\n')


def card_block(card: str, section: str) -> str:
    """The only Python block under the card's `## {section}` heading, as printed."""
    body = card.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    assert len(blocks) == 1, body
    return blocks[0]


def filled(code: str, artifact: Path, texts: list[str]) -> str:
    """`code` with only `d` and `texts` filled in, as a user would."""
    for line in PLACEHOLDERS:
        assert code.count(line) == 1, code
    return code.replace(PLACEHOLDERS[0], f"d = {str(artifact)!r}\n").replace(PLACEHOLDERS[1], f"texts = {texts!r}\n")


def run_card_block(artifact: Path, section: str, texts: list[str], result: str | None = None):
    """Runs the block of `section` on `texts` in a fresh interpreter; returns `result` (an expression,
    by default the name the block's last line assigns) as JSON gives it back."""
    code = filled(card_block((artifact / "README.md").read_text(), section), artifact, texts)
    result = result or code.strip().splitlines()[-1].split("=", 1)[0].strip()
    script = BLOCK_MAKAM + code + f"import json\nprint(json.dumps({result}))\n"
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=artifact.parent, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                                                    "PATH": "/usr/bin:/bin", "HF_HOME": str(artifact.parent / "hf")})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_card_loader(artifact: Path, texts: list[str]) -> list[str]:
    """The card's "Loading" block on `texts`: the labels it predicts."""
    return run_card_block(artifact, "Loading", texts)
