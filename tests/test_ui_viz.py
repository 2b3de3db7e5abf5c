"""Pure picture functions of the attention inspector (ui/viz.py) and the mask editor (ui/editor.py)."""
import numpy as np
import pytest
import torch

from stableviton.attention import attention_centres
from ui import viz
from ui.editor import editor_value, mask_change, mask_from_editor

KH, KW = 32, 24
QH, QW = 32, 24


def one_hot(r, c, kh=KH, kw=KW):
    m = np.zeros((kh, kw), np.float32)
    m[r, c] = 1
    return m


def garment(h=512, w=384):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("r,c", [(0, 0), (5, 17), (31, 23), (16, 3)])
def test_overlay_of_one_hot_map_peaks_in_that_key_cell(r, c):
    g = garment()
    heat = viz.upsample_map(one_hot(r, c), g.shape[:2])
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert r * 16 <= y < (r + 1) * 16 and c * 16 <= x < (c + 1) * 16
    assert heat.max() == pytest.approx(1.0)
    # far from the cell the map is zero and the overlay is just the dimmed garment
    out = viz.overlay(g, one_hot(r, c))
    fy, fx = (y + 256) % 512, (x + 192) % 384
    assert heat[fy, fx] == 0
    np.testing.assert_array_equal(out[fy, fx], np.round(g[fy, fx] * 0.55).astype(np.uint8))
    # the overlay changes the garment most at the key cell
    change = np.abs(out.astype(int) - np.round(g * 0.55).astype(int)).sum(-1)
    cy, cx = np.unravel_index(np.argmax(change), change.shape)
    assert r * 16 - 8 <= cy < (r + 1) * 16 + 8 and c * 16 - 8 <= cx < (c + 1) * 16 + 8


def test_centres_of_maps_that_look_at_one_key_are_that_key_and_match_stableviton():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, [KH, KW], size=(QH * QW, 2))
    probs = np.zeros((QH * QW, KH * KW), np.float32)
    probs[np.arange(QH * QW), targets[:, 0] * KW + targets[:, 1]] = 1
    c = viz.centres(probs, (KH, KW))
    np.testing.assert_array_equal(c, targets.astype(np.float32))
    ref = attention_centres(torch.from_numpy(probs)[None], (KH, KW))[0].numpy()
    np.testing.assert_array_equal(c, ref)
    # a map split evenly between two keys has its centre halfway
    p2 = np.zeros((1, KH * KW), np.float32)
    p2[0, 2 * KW + 4] = p2[0, 10 * KW + 20] = 0.5
    np.testing.assert_allclose(viz.centres(p2, (KH, KW))[0], [6.0, 12.0])


def test_coordinate_image_encodes_exactly_the_looked_at_key():
    r, c = 7, 19
    probs = np.tile(one_hot(r, c).reshape(1, -1), (QH * QW, 1))
    centre = viz.centres(probs, (KH, KW)).reshape(QH, QW, 2)
    mask = np.zeros((QH, QW), bool)
    mask[10:20, 5:15] = True
    img = viz.coordinate_image(centre, mask, (KH, KW))
    expected = viz.encode_coordinates(np.array([r, c], np.float32), (KH, KW))
    assert (img[mask] == expected).all()
    assert (img[~mask] == viz.NO_QUERY_RGB).all()
    np.testing.assert_allclose(viz.decode_coordinates(img[mask][0], (KH, KW)), [r, c], atol=(KH - 1) / 255)
    # corners of the grid are the extreme colours
    np.testing.assert_array_equal(viz.encode_coordinates(np.array([[0, 0], [KH - 1, KW - 1]]), (KH, KW)),
                                  [[0, 0, 128], [255, 255, 128]])
    big = viz.coordinate_image(centre, mask, (KH, KW), size=(512, 384))
    assert big.shape == (512, 384, 3) and (big[10 * 16 + 3, 5 * 16 + 3] == expected).all()


def test_resampled_garment_copies_the_looked_at_pixel():
    g = garment()
    r, c = 20, 6
    centre = np.broadcast_to(np.array([r, c], np.float32), (QH, QW, 2)).copy()
    mask = np.ones((QH, QW), bool)
    out = viz.resample_garment(g, centre, mask, (KH, KW))
    # the centre of key cell (r, c) is between pixels 16r+7 and 16r+8: bilinear mean of the 2x2 block there
    block = g[16 * r + 7:16 * r + 9, 16 * c + 7:16 * c + 9].astype(np.float32).mean((0, 1))
    np.testing.assert_allclose(out[100, 100], block, atol=1.0)
    assert np.ptp(out.reshape(-1, 3), axis=0).max() <= 1  # every pixel reads the same place
    # identity correspondence reproduces the garment (up to interpolation at the borders)
    yy, xx = np.mgrid[0:QH, 0:QW].astype(np.float32)
    ident = viz.resample_garment(g, np.stack([yy, xx], -1), mask, (KH, KW))
    np.testing.assert_array_equal(ident[16:-16, 16:-16], g[16:-16, 16:-16])


def test_sharpness_of_one_hot_and_uniform_maps():
    one = np.tile(one_hot(3, 4).reshape(1, -1), (10, 1))
    s = viz.sharpness(one, (KH, KW))
    assert s["entropy"] == pytest.approx(0, abs=1e-6) and s["spread"] == pytest.approx(0, abs=1e-6)
    assert s["peak"] == pytest.approx(1)
    uni = np.full((10, KH * KW), 1 / (KH * KW), np.float32)
    u = viz.sharpness(uni, (KH, KW))
    assert u["entropy_fraction"] == pytest.approx(1, abs=1e-5)
    # RMS distance from the centre of a uniform 32x24 grid: sqrt(var_rows + var_cols) = sqrt((32^2-1)/12 + (24^2-1)/12)
    assert u["spread"] == pytest.approx(np.sqrt((32**2 - 1) / 12 + (24**2 - 1) / 12), rel=1e-4)
    mask = np.zeros((2, 5), bool)
    mask[0, :2] = True
    assert viz.sharpness(np.concatenate([one[:5], uni[:5]]), (KH, KW), mask)["queries"] == 2


def test_query_from_click_and_box_round_trip():
    assert viz.query_from_xy(0, 0, (384, 512), (QH, QW)) == (0, 0)
    assert viz.query_from_xy(383.9, 511.9, (384, 512), (QH, QW)) == (31, 23)
    assert viz.query_from_xy(200, 100, (384, 512), (QH, QW)) == (6, 12)
    assert viz.query_from_xy(200, 100, (768, 1024), (QH, QW)) == (3, 6)
    assert viz.query_box((6, 12), (384, 512), (QH, QW)) == (192, 96, 208, 112)
    marked = viz.mark_query(np.zeros((512, 384, 3), np.uint8), (6, 12), (QH, QW))
    assert marked[96, 192:208].any() and not marked[300, 300].any()


def test_query_mask_and_spread_queries():
    m = np.zeros((512, 384), np.uint8)
    m[160:480, 96:288] = 255  # rows 10..29, cols 6..17 of the token grid
    q = viz.query_mask(m, (QH, QW))
    assert q.sum() == 20 * 12 and q[10:30, 6:18].all()
    pts = viz.spread_queries(q, 12)
    assert len(pts) == 12 and len(set(pts)) == 12 and all(q[r, c] for r, c in pts)
    rows = [r for r, _ in pts]
    assert max(rows) - min(rows) >= 12  # spread, not clustered
    assert viz.spread_queries(np.zeros((4, 4), bool), 5) == []


def test_attention_grid_tiles():
    res, g = garment(), garment()[::-1]
    maps = [one_hot(0, 0), one_hot(31, 23)]
    img = viz.attention_grid(res, g, maps, [(1, 1), (2, 2)], (QH, QW), columns=4, tile_height=128)
    assert img.shape == (128 + 12, 2 * (96 + 96 + 2 + 6) + 6, 3)
    assert not np.array_equal(img[6:134, 6 + 98:6 + 194], img[6:134, 6 + 200 + 98:6 + 200 + 194])


def test_colormap_endpoints():
    np.testing.assert_array_equal(viz.colormap(np.array([0.0, 1.0])), [[0, 0, 4], [252, 255, 164]])


def test_editor_round_trip_and_edits():
    person = garment()
    auto = np.zeros((512, 384), np.uint8)
    auto[100:300, 100:250] = 255
    value = editor_value(person, auto)
    np.testing.assert_array_equal(mask_from_editor(value, (512, 384)), auto)
    layer = value["layers"][0].copy()
    layer[20:40, 20:60, 3] = 255  # brush stroke
    layer[100:120, 100:250, 3] = 0  # eraser
    edited = mask_from_editor({**value, "layers": [layer]}, (512, 384))
    assert mask_change(auto, edited) == (20 * 40, 20 * 150)
    # an editor that returns a downscaled canvas
    small = mask_from_editor({"layers": [layer[::2, ::2]]}, (512, 384))
    assert small.shape == (512, 384) and abs(int((small > 0).sum()) - int((edited > 0).sum())) < 400
    # no layers: composite vs background
    comp = person.copy()
    comp[50:60, 50:70] = [255, 0, 0]
    m = mask_from_editor({"background": person, "layers": [], "composite": comp}, (512, 384))
    assert m[50:60, 50:70].all() and m.sum() // 255 == ((np.abs(comp.astype(int) - person).max(-1) > 24).sum())
    assert mask_from_editor(None, (512, 384)) is None
