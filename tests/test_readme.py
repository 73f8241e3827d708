"""The README's commands and paths match the repository: every tool, config and doc it
names exists, and every output folder it promises from the quickstart is one the
quickstart writes."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme() -> str:
    with open(os.path.join(REPO, 'README.md')) as f:
        return f.read()


def test_named_files_exist():
    # lines citing a peer's repository ("zyy721/DOME: tools/eval_metric.py") name its files
    lines = [ln for ln in _readme().splitlines() if not re.search(r'\b[\w-]+/[\w-]+: ', ln)]
    named = set(re.findall(r'\b((?:tools|configs|docs|occwm)/[\w./-]+\.(?:py|sh|md|png))\b',
                           '\n'.join(lines)))
    assert named, 'the README names no files?'
    missing = sorted(p for p in named if not os.path.exists(os.path.join(REPO, p)))
    assert not missing, f'README names files that do not exist: {missing}'


def test_quickstart_outputs_are_the_ones_the_quickstart_writes():
    with open(os.path.join(REPO, 'tools', 'quickstart.py')) as f:
        quickstart = f.read()
    text = _readme()
    section = text[text.index('## What the quickstart does'):text.index('## Tools')]
    promised = set(re.findall(r'\b(outputs/[\w./<>-]+)', section))
    assert 'outputs/metrics/synthetic_val.json' in promised
    for path in promised:
        if '<' in path:  # a pattern such as outputs/metrics/<set>.json
            continue
        assert path.rstrip('/.') in quickstart, f'README promises {path}; tools/quickstart.py does not write it'
