"""Loading and framing: every odd input gives RGB or a specific error; framing never stretches and
paste_back inverts it."""
import io

import numpy as np
import pytest
from PIL import Image

from preprocessing import (
    EmptyFileError, ImageTooLargeError, ImageTooSmallError, NotAnImageError, TruncatedImageError,
    load_image, paste_back,
)
from preprocessing.framing import Framing, choose_box, crop_to_canvas


def _png_bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w=200, h=120):
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], -1).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    arr = _gradient()
    arr[:20, :30] = (255, 0, 0)  # red marker top-left of the upright picture
    upright = Image.fromarray(arr)
    # store it as a camera would: pixels rotated, Orientation=6 ("rotate 90 CW to view")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.exif_transposed
    assert loaded.image.size == upright.size == (200, 120)
    got = np.asarray(loaded.image).astype(int)
    assert got[5, 5, 0] > 200 and got[5, 5, 1] < 60  # the marker is back top-left
    assert any("EXIF" in w for w in loaded.warnings)


def test_rgba_composited_on_white():
    arr = np.zeros((100, 100, 4), np.uint8)
    arr[..., 0] = 200
    arr[:50, :, 3] = 255  # top opaque red, bottom fully transparent
    loaded = load_image(_png_bytes(Image.fromarray(arr, "RGBA")))
    out = np.asarray(loaded.image)
    assert tuple(out[10, 10]) == (200, 0, 0)
    assert tuple(out[90, 10]) == (255, 255, 255)
    assert loaded.source_mode == "RGBA"


def test_grey_cmyk_palette_to_rgb():
    grey = load_image(_png_bytes(Image.fromarray(_gradient()[..., 0])))
    assert grey.image.mode == "RGB" and np.ptp(np.asarray(grey.image)[..., 0]) > 200
    cmyk = load_image(_png_bytes(Image.fromarray(_gradient()).convert("CMYK"), "JPEG"))
    assert cmyk.source_mode == "CMYK" and cmyk.image.mode == "RGB"
    assert np.abs(np.asarray(cmyk.image).astype(int) - _gradient()).mean() < 12
    pal = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p = load_image(_png_bytes(pal))
    assert p.source_mode == "P" and p.image.mode == "RGB"


def test_16bit_grey_is_rescaled_not_clipped():
    arr16 = (np.linspace(0, 65535, 128 * 128).reshape(128, 128)).astype(np.uint16)
    img = Image.fromarray(arr16)
    assert img.mode.startswith("I;16")
    out = np.asarray(load_image(_png_bytes(img)).image)[..., 0]
    # a naive convert("RGB") would be ~255 almost everywhere; rescaling keeps the ramp
    assert out[0, 0] == 0 and out[-1, -1] == 255 and 100 < out[64, 64] < 156
    # numpy uint16 input too
    out2 = np.asarray(load_image(arr16).image)[..., 0]
    assert abs(int(out2[64, 64]) - int(out[64, 64])) <= 1


def test_text_file_renamed_png(tmp_path):
    p = tmp_path / "photo.png"
    p.write_text("this is not an image\n" * 20)
    with pytest.raises(NotAnImageError, match="not an image"):
        load_image(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(EmptyFileError, match="empty"):
        load_image(p)


def test_truncated_file():
    data = _png_bytes(Image.fromarray(_gradient(300, 300)), "JPEG", quality=90)
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_huge_image_rejected_from_header_without_decoding():
    big = _png_bytes(Image.new("1", (10000, 10000)))  # 100 MP, a few kB compressed
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        load_image(big)


def test_tiny_image_rejected():
    with pytest.raises(ImageTooSmallError, match="at least"):
        load_image(np.zeros((40, 300, 3), np.uint8))


def test_choose_box_keeps_aspect_and_contains_content():
    for size, content in [((512, 384), (100, 50, 300, 700)), ((1024, 768), (10, 10, 1500, 400)),
                          ((512, 384), (0, 0, 640, 480))]:
        w, h = 2000, 1000
        box = choose_box((w, h), content, size)
        bw, bh = box[2] - box[0], box[3] - box[1]
        assert bw * size[0] == bh * size[1]  # exact 3:4, never stretched
        cx0, cy0, cx1, cy1 = content
        assert box[0] <= cx0 and box[1] <= cy0 and box[2] >= min(cx1, w) and box[3] >= min(cy1, h)


def test_choose_box_prefers_no_padding_when_possible():
    # a small person in a large photo: the box fits inside the photo
    box = choose_box((1200, 1600), (500, 300, 700, 900), (512, 384))
    assert box[0] >= 0 and box[1] >= 0 and box[2] <= 1200 and box[3] <= 1600
    # head stays near the top of the frame
    assert 300 - box[1] < 0.15 * (box[3] - box[1])


def test_crop_to_canvas_and_paste_back_roundtrip():
    rng = np.random.default_rng(0)
    src = Image.fromarray(rng.integers(0, 255, (900, 700, 3), np.uint8)).resize((700, 900))
    box = (-60, 100, 540, 900)  # partly outside on the left -> padding
    canvas, framing = crop_to_canvas(src, box, (512, 384))
    assert canvas.size == (384, 512) and framing.padded
    arr = np.asarray(canvas)
    vx0, vy0, vx1, vy1 = framing.valid_region()
    assert vx0 == round(60 * framing.scale) and (arr[:, : vx0 - 1] == 255).all()
    # keypoint mapping is invertible
    pts = np.array([[0.0, 100.0], [539.0, 899.0], [123.4, 456.7]])
    assert np.allclose(framing.to_source(framing.to_canvas(pts)), pts)
    # pasting an edited canvas back changes only the box, at source resolution
    edited = np.asarray(canvas).copy()
    edited[200:300, 150:250] = (0, 255, 0)
    out = np.asarray(paste_back(src, edited, framing))
    assert out.shape == (900, 700, 3)
    sx, sy = framing.to_source(np.array([[200.0, 250.0]]))[0]
    assert tuple(out[int(sy), int(sx)]) == (0, 255, 0)
    assert (out[:100] == np.asarray(src)[:100]).all()  # above the box untouched
    # a 256x192 generation of the same framing maps to the same place
    small = Image.fromarray(edited).resize((192, 256), Image.Resampling.NEAREST)
    out2 = np.asarray(paste_back(src, small, framing))
    assert tuple(out2[int(sy), int(sx)]) == (0, 255, 0)


def test_paste_back_with_mask_keeps_unmasked_pixels_exact():
    src = Image.fromarray(_gradient(400, 600))
    canvas, framing = crop_to_canvas(src, (0, 0, 300, 400), (512, 384))
    gen = np.zeros((512, 384, 3), np.uint8)
    mask = np.zeros((512, 384), np.uint8)
    mask[100:200, 100:200] = 255
    out = np.asarray(paste_back(src, gen, framing, mask, feather=1.0))
    sx, sy = framing.to_source(np.array([[150.0, 150.0], [350.0, 450.0]]))
    assert out[int(sx[1]), int(sx[0])].max() == 0  # inside the mask: generated (black)
    assert (out[int(sy[1]), int(sy[0])] == np.asarray(src)[int(sy[1]), int(sy[0])]).all()
    with pytest.raises(ValueError):
        paste_back(src.resize((100, 100)), gen, framing)


def test_framing_dataclass_scale():
    f = Framing((1000, 1000), (100, 0, 400, 400), (512, 384))
    assert f.scale == pytest.approx(384 / 300) and not f.padded
