"""The listening test in the real webMUSHRA client: the pack's exported experiment served on loopback (by PHP's
built-in server running webMUSHRA's own service/write.php, and by ``listening serve``), one full session driven
in headless Chromium through selenium, then ``listening import`` and ``listening analyze`` on what came back.

Needs Debian's ``chromium`` and ``chromium-driver`` (``php-cli`` for the write.php path) and webMUSHRA itself:
``$ECHOSCRIPT_WEBMUSHRA`` (a folder or a .tar.gz), else ``../shared/webmushra/webmushra.tar.gz`` beside the
checkout. ``scripts/install_test_deps.sh`` installs the packages. Set ``ECHOSCRIPT_SCREENSHOTS=DIR`` to keep
screenshots of the pages a participant sees.
"""

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from echoscript_utils import audio
from echoscript_utils import listening as L
from echoscript_utils.cli import main
from echoscript_utils.listening.serve import WEBMUSHRA_ENV, ListeningServer

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ["suspense", "triumph"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _webmushra_source() -> Path | None:
    env = os.environ.get(WEBMUSHRA_ENV)
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "webmushra" / "webmushra.tar.gz",
                                                 REPO.parent / "shared" / "webmushra"]:
        if cand.is_file() or (cand / "index.html").is_file():
            return cand
    return None


SOURCE = _webmushra_source()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (scripts/install_test_deps.sh)"),
    pytest.mark.skipif(SOURCE is None, reason=f"webMUSHRA not found: set {WEBMUSHRA_ENV} to its folder or "
                                              f"tarball, or put shared/webmushra/ beside the checkout"),
]


# ------------------------------------------------------------------------------------------ fixtures
def _unpack(dest: Path) -> Path:
    """A fresh copy of webMUSHRA under ``dest`` (its folder)."""
    if SOURCE.is_file():
        with tarfile.open(SOURCE) as tar:
            tar.extractall(dest, filter="data")
        roots = [p.parent for p in dest.rglob("index.html") if (p.parent / "startup.js").is_file()]
        assert len(roots) == 1, roots
        return roots[0]
    shutil.copytree(SOURCE, dest / "webmushra")
    return dest / "webmushra"


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A two-scenario pack of 1 s clips (short audio keeps the playback the first page demands short)."""
    root = tmp_path_factory.mktemp("run")
    gen = root / "05_generation"
    for label, (sr, amp) in {"musicgen": (32000, 0.1), "echoscript": (32000, 0.4)}.items():
        for i, s in enumerate(SCENARIOS):
            t = np.arange(int(sr * 1.2)) / sr
            wav = (amp * np.sin(2 * np.pi * (220 + 60 * i) * t))[None].astype(np.float32)
            audio.write(gen / label / f"{s}.wav", wav, sr)
            (gen / label / f"{s}.json").write_text(json.dumps(
                {"prompt": f"a {s} scene", "scenario": s, "seed": 0, "model": label}))
    return L.build_pack(gen, root / "07_listening", clip_s=1.0, n_participants=2, seed=5, progress=False)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1100,900", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------ one session
PAGE_INFO = """
var p = pageManager.getCurrentPage();
var kind = p instanceof FinishPage ? 'finish' : p instanceof ConsentPage ? 'consent' :
           p instanceof VolumePage ? 'volume' : p instanceof LikertMultiStimulusPage ? 'lms' :
           p instanceof GenericPage ? 'generic' : 'other';
return {index: pageManager.getPageIndex(), count: pageManager.getNumPages(), kind: kind,
        id: kind === 'lms' ? p.pageConfig.id : '', mustPlayback: kind === 'lms' ? !!p.pageConfig.mustPlayback : false,
        stimuli: kind === 'lms' ? p.stimuli.map(function (s) { return s.id; }) : [],
        values: kind === 'lms' ? p.pageConfig.response.map(function (r) { return String(r.value); }) : [],
        errors: errorHandler.getErrors()};
"""


def _checked(driver, i):
    return driver.execute_script(f"return $(\"input[name='{i}__response']:checked\").val() || null;")


def _click_label(driver, for_id):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});",
                          driver.find_element("css selector", f"label[for='{for_id}']"))
    driver.find_element("css selector", f"label[for='{for_id}']").click()


def _next(driver):
    button = _wait(lambda: [b for b in driver.find_elements("id", "__button_next") if b.is_enabled()],
                   what="an enabled Next button")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def run_session(driver, url: str, participant: str, *, seed: int, shots: Path | None = None) -> dict:
    """Take the whole test as a participant would: click through every page, play what must be played, answer
    with seeded random choices. Returns what was answered: ``ratings[(scenario, clip, question)] = score``,
    ``prefs[(scenario, criterion)] = clip`` and the number of pages seen."""
    rng = np.random.default_rng(seed)
    driver.get(url)
    _wait(lambda: driver.execute_script("return typeof pageManager !== 'undefined' && pageManager !== null && "
                                        "pageManager.getPageIndex() >= 0 && !$('body > div').first()"
                                        ".hasClass('ui-disabled');"), 30, "webMUSHRA to load the experiment")
    ratings, prefs, kinds, shot_kinds = {}, {}, [], set()
    while True:
        info = driver.execute_script(PAGE_INFO)
        assert not info["errors"], info["errors"]
        kinds.append(info["kind"])
        scenario, _, item = info["id"].partition("__")
        if info["kind"] == "consent":
            _click_label(driver, "radio-choice-accept")
        elif info["kind"] == "lms":
            stimuli = info["stimuli"]
            if item.startswith("pref_"):
                pick = int(rng.integers(len(stimuli)))
                # try to break the rule first: mark the other clip preferred, then the chosen one
                _click_label(driver, f"{1 - pick}__response_0")
                _click_label(driver, f"{pick}__response_0")
                marks = [_checked(driver, i) for i in range(len(stimuli))]
                assert marks == [str(L.webmushra.PREFERRED) if i == pick else str(L.webmushra.NOT_PREFERRED)
                                 for i in range(len(stimuli))], marks
                prefs[(scenario, item[len("pref_"):])] = stimuli[pick]
            else:
                for i, clip in enumerate(stimuli):
                    if info["mustPlayback"]:
                        assert driver.find_element("id", f"{i}__response_0").get_attribute("disabled")
                        driver.find_element("id", f"playCondition{i}").click()
                        _wait(lambda i=i: not driver.find_element("id", f"{i}__response_0").get_attribute(
                            "disabled"), 10, f"playback of stimulus {i} to end")
                    k = int(rng.integers(len(info["values"])))
                    _click_label(driver, f"{i}__response_{k}")
                    ratings[(scenario, clip, item)] = int(info["values"][k])
        if shots is not None and (info["kind"], item.startswith("pref_")) not in shot_kinds:
            shot_kinds.add((info["kind"], item.startswith("pref_")))
            driver.save_screenshot(str(shots / f"{info['index']:02d}_{info['kind']}_{info['id'] or 'page'}.png"))
        if info["kind"] == "finish":
            driver.find_element("id", "participant").send_keys(participant)
            age = driver.find_element("id", "age")
            age.clear()
            age.send_keys(str(30 + seed))
            for name in ("gender", "education", "musical_training", "ai_music_familiarity", "listening_habits"):
                _click_label(driver, f"{name}__response_{int(rng.integers(2))}")
            send = _wait(lambda: [b for b in driver.find_elements("id", "send_results") if b.is_enabled()],
                         what="the send button")[0]
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", send)
            send.click()
            _wait(lambda: driver.execute_script("return $('#popupDialog').parent().hasClass('ui-popup-active');"),
                  10, "webMUSHRA's closing popup")
            if shots is not None:
                driver.save_screenshot(str(shots / "zz_after_send.png"))
            break
        _next(driver)
    return {"ratings": ratings, "prefs": prefs, "pages": len(kinds), "kinds": kinds}


def _shots_dir(name: str) -> Path | None:
    root = os.environ.get("ECHOSCRIPT_SCREENSHOTS")
    if not root:
        return None
    d = Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check_study(study_dir: Path, answers: dict, participant: str):
    study = L.validate_study(study_dir)
    r = study.responses[study.responses["participant"] == participant]
    got = {(x.scenario, x.clip, x.question): int(x.score) for x in r.itertuples()}
    assert got == answers["ratings"]
    p = study.preferences[study.preferences["participant"] == participant]
    assert {(x.scenario, x.criterion): x.chosen_clip for x in p.itertuples()} == answers["prefs"]
    return study


# ------------------------------------------------------------------------------------------ tests
def test_session_through_webmushra_write_php(pack, browser, tmp_path, capsys):
    """webMUSHRA as upstream ships it, with its own write.php under PHP's built-in server."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("needs php-cli to run webMUSHRA's service/write.php (scripts/install_test_deps.sh)")
    root = _unpack(tmp_path / "www")
    shutil.copy(pack.webmushra_path, root / "configs" / "webmushra.yaml")
    audio_dir = root / "configs" / "resources" / "audio" / "listening_test"
    shutil.copytree(pack.pack_dir / "audio", audio_dir)
    port = _free_port()
    proc = subprocess.Popen([php, "-S", f"127.0.0.1:{port}", "-t", str(root)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _reachable(f"http://127.0.0.1:{port}/index.html"), 10, "php -S to start")
        answers = run_session(browser, f"http://127.0.0.1:{port}/index.html?config=webmushra.yaml", "W01",
                              seed=1, shots=_shots_dir("php"))
        cfg = yaml.safe_load(pack.webmushra_path.read_text())
        lms = root / "results" / cfg["testId"] / "lms.csv"
        _wait(lms.is_file, 10, "write.php to write lms.csv")
        # write.php under PHP 8 fails with HTTP 500 after writing (webMUSHRA issue #103): webMUSHRA then shows its
        # sending error (the finish page has showErrors), which is why the pack README asks for PHP 7
        shown = browser.execute_script("return $('#popupResultsContent').text();")
        major = int(subprocess.run([php, "-r", "echo PHP_MAJOR_VERSION;"], capture_output=True, text=True).stdout)
        assert ("error occured while sending" in shown) == (major >= 8), shown
    finally:
        proc.terminate()
        proc.wait(10)
    # every page was built and visited: 3 opening pages, (intro + 8 questions + 2 preferences) per scene, finish
    assert answers["pages"] == 3 + len(SCENARIOS) * (1 + len(L.QUESTIONS) + 2) + 1
    assert answers["kinds"][:3] == ["generic", "consent", "volume"] and answers["kinds"][-1] == "finish"
    assert len(answers["ratings"]) == len(pack.key) * len(L.QUESTIONS) and len(answers["prefs"]) == 4

    study_dir = tmp_path / "study"
    assert main(["listening", "import", "--results", str(lms.parent), "--key", str(pack.key_path),
                 "--output", str(study_dir)]) == 0
    _check_study(study_dir, answers, "W01")
    assert pd.read_csv(study_dir / L.webmushra.REPORT_NAME).empty
    assert main(["listening", "analyze", "--study", str(study_dir), "--output", str(tmp_path / "analysis")]) == 0
    means = pd.read_csv(tmp_path / "analysis" / "question_means.csv")
    assert set(means["model"]) == {"musicgen", "echoscript"} and (means["n"] == len(SCENARIOS)).all()
    assert (tmp_path / "analysis" / "preference_shares.csv").is_file()

    # the same real file with a second, valid participant and a third whose preference page marks both clips:
    # the import keeps the valid two, names the third with file, line and reason, and leaves the file alone
    rows = list(csv.reader(lms.open(newline="")))
    header, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(header)}
    extra = []
    for code in ("W02", "W03"):
        for r in body:
            r = list(r)
            r[col["participant"]] = code
            if code == "W03" and r[col["trial_id"]].endswith("__pref_MOS") and SCENARIOS[0] in r[col["trial_id"]]:
                r[col["stimuli_rating"]] = " 1 "
            extra.append(r)
    mixed = tmp_path / "results" / "lms.csv"
    mixed.parent.mkdir()
    with mixed.open("w", newline="") as f:
        csv.writer(f).writerows([header, *body, *extra])
    digest = hashlib.sha256(mixed.read_bytes()).hexdigest()
    out2 = tmp_path / "study2"
    code = main(["listening", "import", "--results", str(mixed), "--key", str(pack.key_path), "--output", str(out2)])
    assert code == 3  # partial import
    assert hashlib.sha256(mixed.read_bytes()).hexdigest() == digest
    report = pd.read_csv(out2 / L.webmushra.REPORT_NAME)
    assert set(report["participant"]) == {"W03"} and len(report) == 1
    bad_lines = [i + 2 for i, r in enumerate([*body, *extra]) if r[col["participant"]] == "W03"
                 and r[col["trial_id"]] == f"{SCENARIOS[0]}__pref_MOS"]
    assert report["file"].iloc[0] == "lms.csv" and report["line"].iloc[0] == min(bad_lines)
    assert "2 clips marked preferred" in report["reason"].iloc[0]
    study2 = L.validate_study(out2)
    assert study2.participants == ["W01", "W02"]
    err = capsys.readouterr().err
    assert "W03" in err and "set aside" in err


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_session_through_listening_serve(pack, browser, tmp_path):
    """``listening serve``: no PHP, the submission lands in the study folder, a repeat is not counted twice."""
    web = _unpack(tmp_path / "www")
    study_dir = tmp_path / "study"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "echoscript_utils", "listening", "serve", "--pack",
                             str(pack.root), "--study", str(study_dir), "--webmushra", str(web), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening test: open http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split("open ", 1)[1].strip()
        # nothing outside the experiment is served: not the key, not write.php's source
        for path in ("/key.csv", "/service/write.php", "/configs/../../key.csv"):
            assert not _reachable(f"http://127.0.0.1:{port}{path}"), path
        answers = run_session(browser, url, "S01", seed=2, shots=_shots_dir("serve"))
        sessions = study_dir / "webmushra" / "sessions"
        _wait(lambda: (study_dir / "responses.csv").is_file(), 10, "the study tables")
        # the popup after "send" reports no sending error (webMUSHRA fills it on a failed send: see the PHP test)
        assert "error" not in browser.execute_script("return $('#popupResultsContent').text();")
        study = _check_study(study_dir, answers, "S01")
        assert study.participants == ["S01"]
        raw = next(sessions.glob("*.json"))
        body = "sessionJSON=" + json.dumps(json.loads(raw.read_text())["session"])
        req = urllib.request.Request(f"http://127.0.0.1:{port}/service/write.php", data=body.encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200 and r.read() == b""
        assert len(list(sessions.glob("*.json"))) == 1
        assert L.validate_study(study_dir).summary()["ratings"] == len(answers["ratings"])
    finally:
        proc.terminate()
        proc.wait(10)
    assert main(["listening", "analyze", "--study", str(study_dir), "--output", str(tmp_path / "analysis")]) == 0


def test_served_files_match_the_pack(pack, tmp_path):
    """What ``listening serve`` hands the browser is the pack's config and audio, byte for byte."""
    web = _unpack(tmp_path / "www")
    with ListeningServer(pack.root, tmp_path / "study", webmushra_dir=web, port=0, log=lambda _: None) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(f"{base}/configs/webmushra.yaml") as r:
            assert r.read() == pack.webmushra_path.read_bytes()
        clip = pack.key["clip"].iloc[0]
        with urllib.request.urlopen(f"{base}/configs/resources/audio/listening_test/{clip}.wav") as r:
            assert r.read() == pack.audio_path(clip).read_bytes()
        with urllib.request.urlopen(f"{base}/startup.js") as r:
            assert r.read() == (web / "startup.js").read_bytes()


def test_three_clip_preference_page_admits_exactly_one(browser, tmp_path):
    """With three clips (a pack comparing two systems with the baseline) the preference page still admits one
    preferred clip: marking one preferred unmarks the others, and "Next" stays locked while none is preferred."""
    clips = ["a1b2c3d4", "e5f6a7b8", "c9d0e1f2"]
    key = pd.DataFrame({"clip": clips, "model": ["musicgen", "sys_a", "sys_b"], "scenario": ["storm"] * 3})
    cfg = L.webmushra_config(key, pd.DataFrame({"scenario": ["storm"], "description": ["a storm"]}),
                             audio_prefix="configs/resources/audio/listening_test", test_id="three")
    blocks = next(p for p in cfg["pages"] if isinstance(p, list))
    pref = next(p for p in blocks[1] if p["id"] == "storm__pref_MOS")
    cfg["pages"] = [pref, cfg["pages"][-1]]
    root = tmp_path / "07_listening"
    (root / "pack" / "audio").mkdir(parents=True)
    for c in clips:
        audio.write(root / "pack" / "audio" / f"{c}.wav", np.zeros((1, 8000), np.float32) + 0.01, 16000)
    L.write_webmushra(cfg, root / "pack" / "webmushra.yaml")
    key.to_csv(root / "key.csv", index=False)
    with ListeningServer(root, tmp_path / "study", webmushra_dir=_unpack(tmp_path / "www"), port=0,
                         log=lambda _: None) as srv:
        browser.get(srv.url)
        _wait(lambda: browser.execute_script("return typeof pageManager !== 'undefined' && pageManager !== null "
                                             "&& pageManager.getPageIndex() >= 0;"), 30, "the experiment")
        next_enabled = lambda: browser.find_element("id", "__button_next").is_enabled()  # noqa: E731
        for i in range(3):
            _click_label(browser, f"{i}__response_1")  # all three "not preferred"
        assert [_checked(browser, i) for i in range(3)] == ["0", "0", "0"] and not next_enabled()
        _click_label(browser, "1__response_0")
        assert [_checked(browser, i) for i in range(3)] == ["0", "1", "0"] and next_enabled()
        _click_label(browser, "2__response_0")
        assert [_checked(browser, i) for i in range(3)] == ["0", "0", "1"] and next_enabled()
        _click_label(browser, "2__response_1")  # taking the only preference back locks the page again
        assert [_checked(browser, i) for i in range(3)] == ["0", "0", "0"] and not next_enabled()
