"""The app for real: `python app.py --tiny-random` in a subprocess, driven in headless Chromium (Playwright)
and through `gradio_client`. Screenshots go to test-artifacts/ (gitignored)."""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
GARMENT = ROOT / "assets" / "examples" / "garments" / "red_dots_tee.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import matplotlib.cbook as cbook
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        (d / "grace_hopper.jpg").write_bytes(f.read())
    (d / "text.png").write_text("this is not an image, just text renamed .png\n")
    (d / "empty.png").write_bytes(b"")
    Image.new("RGB", (8000, 6000), (200, 190, 180)).save(d / "huge.png")  # 48 MP > the 40 MP limit, ~0.2 MB
    return d


def start_app(args: list[str], log_name: str, **extra_env):
    """`python app.py ARGS` in a subprocess; yields its URL once it serves, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **extra_env}
    for key in ("STABLEVITON_TINY_RANDOM", "STABLEVITON_DEMO_DIR"):  # only what the test asks for
        if key not in extra_env:
            env.pop(key, None)
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")
    proc = subprocess.Popen([sys.executable, "app.py", *args, "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}; see {ARTIFACTS / log_name}")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError("app did not start in 120 s")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def server():
    yield from start_app(["--tiny-random"], "app_server.log")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """Plain `python app.py` on a machine without the released weights: the shipped synthetic demo model (or, in a
    checkout without it, a tiny random one packed the same way, which drives the code path but not its quality)."""
    from stableviton.synthetic import demo
    from tests.helpers import pack_tiny_demo

    root = tmp_path_factory.mktemp("no-weights")
    env = {"STABLEVITON_CHECKPOINT": str(root / "VITONHD.ckpt")}
    if not demo.available(demo.DEMO_DIR):
        env[demo.ENV_DEMO_DIR] = str(pack_tiny_demo(root))
    yield from start_app([], "app_demo_server.log", **env)


@pytest.fixture(scope="module")
def client(server):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(server, verbose=False)


def test_page_says_tiny_mode_and_licence(server):
    html = urllib.request.urlopen(server, timeout=10).read().decode()
    assert "tiny, randomly initialised model" in html
    assert "CC BY-NC-SA 4.0" in html
    assert "Upper body (VITON-HD checkpoint)" in html


def test_bad_uploads_give_messages_and_app_keeps_serving(client, photos):
    from gradio_client import handle_file

    cases = {
        "text.png": r"not an image",
        "empty.png": r"empty \(0 bytes\)",
        "huge.png": r"(too large|pixels)",
    }
    for name, pattern in cases.items():
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(photos / name)), handle_file(str(GARMENT)), api_name="/prepare")
        msg = str(err.value)
        assert re.search(pattern, msg, re.I), (name, msg)
        assert "Traceback" not in msg and "File \"" not in msg
    with pytest.raises(Exception) as err:  # a garment is not a person
        client.predict(handle_file(str(GARMENT)), handle_file(str(GARMENT)), api_name="/prepare")
    assert "No person was found" in str(err.value)
    # ... and the next request is served normally
    out = client.predict(handle_file(str(photos / "astronaut.png")), handle_file(str(GARMENT)), api_name="/prepare")
    assert "Framed at 384x512" in out[6]


def test_tryon_api_keeps_the_photo_outside_the_mask(client, photos):
    from gradio_client import handle_file

    src = Image.open(photos / "grace_hopper.jpg").convert("RGB")
    w, h = src.size
    mask = np.zeros((h, w), np.uint8)
    box = (int(0.25 * w), int(0.55 * h), int(0.75 * w), int(0.95 * h))  # (x0, y0, x1, y1): her jacket
    mask[box[1]:box[3], box[0]:box[2]] = 255
    mpath = photos / "mask.png"
    Image.fromarray(mask).save(mpath)
    image, attention, info = client.predict(
        handle_file(str(photos / "grace_hopper.jpg")), handle_file(str(GARMENT)), 2, 1234, "ddim", 1.0, True,
        handle_file(str(mpath)), True, api_name="/tryon")
    assert info["seed"] == 1234 and info["steps"] == 2 and info["model"] == "tiny"
    out = np.asarray(Image.open(image).convert("RGB")).astype(int)
    orig = np.asarray(src).astype(int)
    assert out.shape == orig.shape  # the photo's own resolution and framing
    inside = np.zeros((h, w), bool)
    inside[box[1] + 12:box[3] - 12, box[0] + 12:box[2] - 12] = True
    near = np.zeros((h, w), bool)
    near[max(0, box[1] - 12):box[3] + 12, max(0, box[0] - 12):box[2] + 12] = True
    assert np.abs(out - orig)[inside].mean() > 20  # generated inside the mask
    np.testing.assert_array_equal(out[~near], orig[~near])  # repaint: untouched outside it
    data = np.load(attention)
    maps = data["maps_block4"].astype(np.float32)
    assert maps.shape[1:] == (1, 32 * 24, 32 * 24) and maps.shape[0] == len(data["steps"]) == 2
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=2e-2)  # head-averaged softmax rows
    rows = np.arange(32).repeat(24)
    np.testing.assert_allclose(data["centres_block4"][..., 0], maps @ rows, atol=1e-3)
    qm = data["query_mask"]
    assert qm.shape == (32, 24) and 0 < qm.sum() < 32 * 24


def _crop_section(page, full: Path, top_sel: str, bottom_sel: str, out: Path, pad: int = 16) -> None:
    js = "([s, edge]) => { const r = document.querySelector(s).getBoundingClientRect(); return r[edge] + window.scrollY; }"
    y0 = max(0, int(page.evaluate(js, [top_sel, "top"])) - pad)
    y1 = int(page.evaluate(js, [bottom_sel, "bottom"])) + pad
    im = Image.open(full)
    im.crop((0, y0, im.width, min(im.height, y1))).save(out)


def _img_bytes(page, selector: str) -> tuple[str, np.ndarray]:
    src = page.locator(f"{selector} img").first.get_attribute("src")
    body = page.request.get(src).body()
    return src, np.asarray(Image.open(BytesIO(body)).convert("RGB")).astype(int)


def _query(page) -> tuple[int, int]:
    m = re.search(r"row (\d+), col (\d+)\) of 32x24", page.locator("#point-info").inner_text())
    assert m, page.locator("#point-info").inner_text()
    return int(m.group(1)), int(m.group(2))


@contextlib.contextmanager
def chromium_page(url: str):
    """A page of headless Debian Chromium (Playwright) open at `url`; skips, saying why, without them."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            yield page
        finally:
            browser.close()


def test_browser_flow_prepare_edit_tryon_inspect(server, photos):
    with chromium_page(server) as page:
        page.wait_for_selector("#prepare-btn")

        # 1. upload and prepare
        page.locator("#person input[type=file]").set_input_files(str(photos / "astronaut.png"))
        page.locator("#garment input[type=file]").set_input_files(str(GARMENT))
        page.wait_for_timeout(800)
        page.click("#prepare-btn")
        page.wait_for_selector("#pose img", timeout=60000)
        page.wait_for_selector("#mask-editor canvas")
        assert "Framed at 384x512" in page.locator("#prep-info").inner_text()
        for panel in ("#parsing", "#densepose", "#agnostic", "#garment-canvas"):
            assert page.locator(f"{panel} img").count() == 1

        # 2. edit the mask: a brush stroke above the head (outside the automatic mask)
        page.locator("#mask-editor button[aria-label='Brush']").click()
        bb = page.locator("#mask-editor canvas").first.bounding_box()
        x0, y0 = bb["x"] + bb["width"] * 0.35, bb["y"] + bb["height"] * 0.12
        page.mouse.move(x0, y0)
        page.mouse.down()
        for k in range(1, 15):
            page.mouse.move(x0 + 8 * k, y0 + 2 * k, steps=2)
        page.mouse.up()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "app_prepared.png"), full_page=True)
        _crop_section(page, ARTIFACTS / "app_prepared.png", "h1", "#mask-editor", ARTIFACTS / "readme_prepare.png")

        # 3. try on (2 steps in tiny mode by default)
        page.click("#tryon-btn")
        page.wait_for_selector("#inspect-result img", timeout=180000)
        page.wait_for_selector("#point-map img")
        info = page.locator("#run-info").inner_text()
        assert "Seed used: 42" in info and "result 512x512" in info, info
        added = int(re.search(r"mask edited: \+(\d+)", info).group(1))
        assert added > 500, info  # the stroke reached the mask used for the try-on
        assert page.locator("#download a").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "app_result.png"), full_page=True)

        # 4. click two points of the result: the attention panel changes with the point
        _, before = _img_bytes(page, "#point-map")
        img = page.locator("#inspect-result img").first
        ib = img.bounding_box()
        shots = []
        for fx, fy in ((0.35, 0.45), (0.62, 0.75)):
            src_before = page.locator("#point-map img").first.get_attribute("src")
            img.click(position={"x": ib["width"] * fx, "y": ib["height"] * fy})
            page.wait_for_function(
                "s => { const i = document.querySelector('#point-map img'); return i && i.src !== s; }",
                arg=src_before, timeout=30000)
            page.wait_for_timeout(300)
            q = _query(page)
            assert abs(q[0] - fy * 32) <= 2 and abs(q[1] - fx * 24) <= 2, (q, fx, fy)
            _, heat = _img_bytes(page, "#point-map")
            _, marked = _img_bytes(page, "#inspect-result")
            y0q, x0q = q[0] * 16, q[1] * 16
            assert (marked[y0q, x0q + 8] == [0, 255, 255]).all()  # the clicked token is outlined
            shots.append((q, heat))
        (q1, h1), (q2, h2) = shots
        assert q1 != q2
        assert h1.shape == h2.shape == before.shape == (512, 384, 3)
        assert np.abs(h1 - h2).mean() > 0.5 and np.abs(h1 - h2).max() > 20  # a different map for a different point
        page.locator("#point-map").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "app_inspector.png"), full_page=True)
        _crop_section(page, ARTIFACTS / "app_inspector.png", "#before-after", "#download",
                      ARTIFACTS / "readme_result.png")
        _crop_section(page, ARTIFACTS / "app_inspector.png", "#block", "#sharpness",
                      ARTIFACTS / "readme_inspector.png")

        # the step slider re-renders the views for another captured step
        grid_src = page.locator("#attention-grid img").first.get_attribute("src")
        page.locator("#step-pos input[type=number]").fill("0")
        page.locator("#step-pos input[type=number]").press("Enter")
        page.wait_for_function(
            "s => { const i = document.querySelector('#attention-grid img'); return i && i.src !== s; }",
            arg=grid_src, timeout=30000)
        assert "step 1/2" in page.locator("#point-info").inner_text()  # DPM-Solver++ 2 steps: 2 calls
        # a bad upload: a message on the page, no traceback
        page.locator("#person button[aria-label='Remove Image']").first.click()
        page.locator("#person input[type=file]").set_input_files(str(photos / "text.png"))
        page.wait_for_timeout(800)
        page.click("#prepare-btn")
        page.get_by_text("is not an image Pillow can read").first.wait_for(timeout=30000)
        assert "Traceback" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "app_error.png"))



SYNTHETIC = ROOT / "assets" / "examples" / "synthetic"


def test_default_app_is_the_synthetic_demo_and_says_so(demo_server):
    html = urllib.request.urlopen(demo_server, timeout=10).read().decode()
    assert "Synthetic-domain demo model" in html and "How to add the released checkpoint" in html
    assert "Upper body (synthetic demo model)" in html and "CC BY-NC-SA 4.0" in html
    assert "synthetic_person_0.png" in html  # its examples come from the generator


def test_demo_tryon_api_on_a_held_out_pair(demo_server):
    gradio_client = pytest.importorskip("gradio_client")
    from gradio_client import handle_file

    from stableviton.synthetic.demo import held_out_sample

    client = gradio_client.Client(demo_server, verbose=False)
    image, attention, info = client.predict(
        handle_file(str(SYNTHETIC / "synthetic_person_1.png")), handle_file(str(SYNTHETIC / "synthetic_garment_1.png")),
        2, 7, "plms", 1.0, True, None, True, api_name="/tryon")
    assert info["model"] == "demo" and info["size"] == [96, 128] and info["warnings"] == []
    s = held_out_sample(1)
    out = np.asarray(Image.open(image).convert("RGB")).astype(int)
    inside = s.agnostic_mask > 0
    near = cv2.dilate(s.agnostic_mask, np.ones((9, 9), np.uint8)) > 0  # paste_back feathers the mask edge
    np.testing.assert_array_equal(out[~near], s.person.astype(int)[~near])  # the example's own pixels, repainted
    assert np.abs(out - s.person)[inside].mean() > 5  # generated inside the generator's mask
    maps = np.load(attention)["maps_block7"]
    assert maps.shape == (3, 1, 16 * 12, 16 * 12)  # PLMS 2 steps: grid [501, 1], 3 model calls, all captured


def test_browser_flow_on_the_demo_model(demo_server):
    with chromium_page(demo_server) as page:
        page.wait_for_selector("#prepare-btn")
        page.locator("#synthetic-examples tr.tr-body").first.click()  # held-out pair 0: person + its garment
        page.wait_for_selector("#person img")
        page.wait_for_selector("#garment img")
        page.click("#prepare-btn")
        page.wait_for_selector("#densepose img", timeout=60000)
        assert "synthetic generator" in page.locator("#prep-info").inner_text()
        page.click("#tryon-btn")
        page.wait_for_selector("#inspect-result img", timeout=180000)
        page.wait_for_selector("#point-map img")
        info = page.locator("#run-info").inner_text()
        assert "steps dpm++" in info and "result 96x128" in info, info  # the default sampler
        assert page.locator("#live-preview img").count() == 1  # the last live preview stays on the page
        assert "of 16x12" in page.locator("#point-info").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app_demo.png"), full_page=True)
        _crop_section(page, ARTIFACTS / "app_demo.png", "#before-after", "#sharpness", ARTIFACTS / "readme_demo.png")


# -- the named API, as a script user meets it -------------------------------------------------------------------
def test_api_reads_like_documentation(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    tryon = {p["parameter_name"]: p for p in api["/tryon"]["parameters"]}
    assert list(tryon) == ["person", "garment", "steps", "seed", "sampler", "guidance_scale", "repaint", "mask",
                           "return_attention"]
    defaults = {k: p.get("parameter_default") for k, p in tryon.items() if p.get("parameter_has_default")}
    # the page's defaults (tiny mode: 2 steps; seed 42, DPM-Solver++, no guidance, repaint on)
    assert defaults == {"steps": 2, "seed": 42, "sampler": "dpm++", "guidance_scale": 1.0, "repaint": True,
                        "return_attention": False}
    assert [p["parameter_name"] for p in api["/prepare"]["parameters"]] == ["person", "garment", "parser"]


def test_out_of_range_settings_are_refused_with_what_is_allowed(client, photos):
    from gradio_client import handle_file

    person, garment = handle_file(str(photos / "grace_hopper.jpg")), handle_file(str(GARMENT))
    wrong_mask = photos / "wrong_mask.png"
    Image.new("L", (300, 100), 255).save(wrong_mask)  # neither the canvas' nor the photo's size
    cases = [
        (dict(steps=0), r"steps must be a whole number from 1 to 100, got 0"),
        (dict(steps=100000), r"steps must be a whole number from 1 to 100, got 100000"),
        (dict(steps=2.5), r"steps must be a whole number"),
        (dict(steps=27), r"27 steps have no official timestep grid.*use 26 or 28 steps"),
        (dict(seed=-5), r"seed must be -1 \(random\) or a whole number"),
        (dict(guidance_scale=0.5), r"guidance_scale must be a number from 1"),
        (dict(guidance_scale=11), r"guidance_scale must be a number from 1"),
        (dict(sampler="euler"), r"euler.*(not in the list|choose one of)"),
        (dict(mask=handle_file(str(wrong_mask))), r"the mask must be 384x512 \(the model canvas\)"),
    ]
    for change, pattern in cases:
        args = {**dict(person=person, garment=garment, steps=2, seed=1, sampler="plms", guidance_scale=1.0,
                       repaint=True, mask=None, return_attention=False), **change}
        with pytest.raises(Exception) as err:
            client.predict(**args, api_name="/tryon")
        msg = str(err.value)
        assert re.search(pattern, msg), (change, msg)
        assert "Traceback" not in msg and "went wrong on our side" not in msg, (change, msg)


def test_the_readme_client_example_runs_as_written(demo_server, tmp_path, monkeypatch):
    """The README's gradio_client snippet, verbatim but for the server address, with `me.jpg` and `shirt.png` in the
    working directory (a public-domain photo and a drawn garment)."""
    import matplotlib.cbook as cbook

    text = (ROOT / "README.md").read_text()
    section = text[text.index("A named endpoint `tryon`"):]
    code = section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 9)]
    assert 'Client("http://127.0.0.1:7860/")' in code
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        (tmp_path / "me.jpg").write_bytes(f.read())
    shutil.copy(GARMENT, tmp_path / "shirt.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("http://127.0.0.1:7860/", demo_server), "README.md", "exec"), scope)  # noqa: S102
    info, image = scope["info"], scope["image"]
    assert info["seed"] == 42 and info["steps"] == 30 and info["sampler"] == "plms" and info["guidance"] == 1.0
    assert Image.open(image).size == Image.open(tmp_path / "me.jpg").size  # pasted back at the photo's size
    assert scope["attention_npz"] is None  # return_attention False in the example
