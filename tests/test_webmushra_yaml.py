"""The exported experiment read by the YAML parser webMUSHRA runs: yaml.js (npm ``yamljs``), at the version whose
``dist/yaml.min.js`` webMUSHRA bundles as ``lib/external/yaml/yaml.min.js``, executed by node. Whatever it reads
must equal what PyYAML reads, so a layout or quoting regression fails here in seconds.

yaml.js comes from the npm registry into a cache folder (``$ECHOSCRIPT_TEST_CACHE``, default
``~/.cache/echoscript/test-tools``; ``scripts/install_test_deps.sh`` fills it); node from the OS packages.
"""

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from echoscript_utils import audio
from echoscript_utils import listening as L
from echoscript_utils.listening import webmushra
from echoscript_utils.listening.webmushra import webmushra_yaml

REPO = Path(__file__).resolve().parents[1]
#: webMUSHRA master bundles yaml.js 0.3.0 byte for byte (checked below whenever webMUSHRA is at hand).
YAMLJS_VERSION = "0.3.0"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(NODE is None or NPM is None,
                                reason="needs node and npm (Debian nodejs, npm; scripts/install_test_deps.sh)")

PARSE_JS = """
const fs = require("fs"), vm = require("vm");
const ctx = {window: {}};
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
process.stdout.write(JSON.stringify(ctx.window.YAML.parse(fs.readFileSync(process.argv[3], "utf8"))));
"""
# ids that YAML parsers read as numbers when unquoted: exponent forms, leading zeros, hex, underscores
NUMBERISH = ["12345e67", "08123456", "1e000000", "0x1f2e3d", "1_000_00", "00000000", "1e10", "deadbeef"]


@pytest.fixture(scope="module")
def yamljs(tmp_path_factory) -> Path:
    """``dist/yaml.min.js`` of npm yamljs at :data:`YAMLJS_VERSION` (installed into the cache when absent)."""
    cache = Path(os.environ.get("ECHOSCRIPT_TEST_CACHE") or Path.home() / ".cache" / "echoscript" / "test-tools")
    prefix = cache / f"yamljs-{YAMLJS_VERSION}"
    dist = prefix / "node_modules" / "yamljs" / "dist" / "yaml.min.js"
    if not dist.is_file():
        proc = subprocess.run([NPM, "install", "--silent", "--prefix", str(prefix), "--no-audit", "--no-fund",
                               "--ignore-scripts", f"yamljs@{YAMLJS_VERSION}"], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0 and dist.is_file(), (
            f"npm could not install yamljs@{YAMLJS_VERSION} into {prefix}: {proc.stderr.strip()[-500:]}; "
            f"run scripts/install_test_deps.sh")
    return dist


def _bundled_parser(tmp: Path) -> Path | None:
    """webMUSHRA's own lib/external/yaml/yaml.min.js, if webMUSHRA is at hand (see test_webmushra_client)."""
    env = os.environ.get("ECHOSCRIPT_WEBMUSHRA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "webmushra" / "webmushra.tar.gz"]:
        if (cand / "lib/external/yaml/yaml.min.js").is_file():
            return cand / "lib/external/yaml/yaml.min.js"
        if cand.is_file():
            with tarfile.open(cand) as tar:
                member = next((m for m in tar.getmembers() if m.name.endswith("lib/external/yaml/yaml.min.js")), None)
                if member is not None:
                    tar.extract(member, tmp, filter="data")
                    return tmp / member.name
    return None


def js_read(parser: Path, text: str, tmp: Path):
    """What yaml.js reads from ``text`` (through JSON)."""
    script, doc = tmp / "parse.js", tmp / "doc.yaml"
    script.write_text(PARSE_JS)
    doc.write_text(text, encoding="utf-8")
    proc = subprocess.run([NODE, str(script), str(parser), str(doc)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _config(clips_per_scenario=2):
    scenarios = ["s1", "s2", "s3", "s4"]
    clips = NUMBERISH[: len(scenarios) * clips_per_scenario]
    key = pd.DataFrame({"clip": clips, "scenario": [s for s in scenarios for _ in range(clips_per_scenario)]})
    desc = pd.DataFrame({"scenario": scenarios,
                         "description": ["a chase: \"run!\" # fast", "calm, 'quiet' – a lake", "{tense} [dark]",
                                         "line one\nline two: a * b & c"]})
    return L.webmushra_config(key, desc, audio_prefix="configs/resources/audio/listening_test", test_id="0123")


def test_yamljs_reads_the_export_as_pyyaml_does(yamljs, tmp_path):
    cfg = _config()
    text = webmushra_yaml(cfg)
    assert yaml.safe_load(text) == cfg
    js = js_read(yamljs, text, tmp_path)
    assert js == json.loads(json.dumps(cfg))
    blocks = js["pages"][3]
    assert blocks[0] == "random" and len(blocks) == 5  # every scenario block arrives as a list of pages
    assert sorted(c for b in blocks[1:] for c in b[1]["stimuli"]) == sorted(NUMBERISH)
    assert js["testId"] == "0123"
    # nested lists as webMUSHRA's example configs lay them out: '-' alone, the inner list indented below
    lines = text.splitlines()
    i = lines.index('    -')
    assert lines[i + 1] == '        - "random"'
    assert "- -" not in text


def test_the_compact_layout_is_what_yamljs_misreads(yamljs, tmp_path):
    """The check above can fail: PyYAML's default output of the same experiment is read differently."""
    cfg = _config()
    plain = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=120)
    assert yaml.safe_load(plain) == cfg
    js = js_read(yamljs, plain, tmp_path)
    assert isinstance(js["pages"][3], str)  # the randomised blocks arrive as one string: no page is built

    class Unquoted(webmushra._WebmushraDumper):
        pass

    Unquoted.add_representer(str, yaml.representer.SafeRepresenter.represent_str)
    unquoted = yaml.dump(cfg, Dumper=Unquoted, sort_keys=False, allow_unicode=True, width=1 << 30, indent=4)
    assert yaml.safe_load(unquoted) == cfg
    ids = [k for b in js_read(yamljs, unquoted, tmp_path)["pages"][3][1:] for k in b[1]["stimuli"]]
    assert "1e000000" not in ids and "08123456" not in ids  # unquoted, yaml.js reads these ids as numbers


def test_the_pack_config_and_the_bundled_parser(yamljs, tmp_path):
    """A built pack's webmushra.yaml, read by the npm yaml.js and by the copy inside webMUSHRA (same bytes)."""
    gen = tmp_path / "05_generation"
    for label, amp in (("musicgen", 0.1), ("echoscript", 0.3)):
        for i, s in enumerate(["dawn", "storm", "chase"]):
            t = np.arange(16000) / 16000
            audio.write(gen / label / f"{s}.wav", (amp * np.sin(2 * np.pi * (200 + 50 * i) * t))[None], 16000)
            (gen / label / f"{s}.json").write_text(json.dumps({"prompt": f"{s}: a 'scene' #1", "scenario": s}))
    pack = L.build_pack(gen, tmp_path / "07_listening", n_participants=1, seed=3, progress=False)
    text = pack.webmushra_path.read_text(encoding="utf-8")
    expected = json.loads(json.dumps(yaml.safe_load(text)))
    assert js_read(yamljs, text, tmp_path) == expected
    bundled = _bundled_parser(tmp_path / "webmushra")
    if bundled is not None:
        assert bundled.read_bytes() == yamljs.read_bytes(), (
            f"webMUSHRA's {bundled.name} is not yamljs {YAMLJS_VERSION}'s dist/yaml.min.js: update YAMLJS_VERSION")
        assert js_read(bundled, text, tmp_path) == expected
