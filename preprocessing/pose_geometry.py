"""The offline parser: the MediaPipe silhouette split by the skeleton, then told apart by a per-photo colour model
(skin sampled from the face, the garment from the chest, the lower garment from the thighs, hair from the head):
sleeves vs bare arms, the neck vs the neckline, the hem vs the trousers. Falls back on the skeleton alone when the
colours do not separate."""
from __future__ import annotations

import cv2
import numpy as np

from .colour import ColourModel
from .errors import BackendUnavailableError
from .labels import (
    FACE, HAIR, LEFT_ARM, LEFT_LEG, PANTS, RIGHT_ARM, RIGHT_LEG, TORSO_SKIN, UPPER, ParsingResult, Part,
    clean_silhouette, components_touching,
)
from .pose import LELB, LEYE, LHIP, LKNE, LSHO, LWRI, RELB, REYE, RHIP, RKNE, RSHO, RWRI, Keypoints, face_oval
from .skeleton import PART_TO_CIHP, body_scale, head_geometry, hip_points, point, skeleton_parts


def _arc_length(points: np.ndarray, polyline: list[np.ndarray]) -> np.ndarray:
    """Position of each point along a polyline (length units from its start), by nearest segment."""
    best = np.full(len(points), np.inf)
    out = np.zeros(len(points))
    start = 0.0
    for p0, p1 in zip(polyline[:-1], polyline[1:]):
        seg = p1 - p0
        length = max(float(np.linalg.norm(seg)), 1e-6)
        t = np.clip(((points - p0) @ seg) / length ** 2, 0.0, 1.0)
        d = np.linalg.norm(points - (p0 + t[:, None] * seg), axis=1)
        better = d < best
        best[better], out[better] = d[better], start + t[better] * length
        start += length
    return out


def best_cut(position: np.ndarray, score: np.ndarray) -> float:
    """Threshold on ``position`` that best splits pixels into "before" (score < 0 wanted) and
    "after" (score > 0 wanted): a sleeve ends once along an arm, a garment once down the body."""
    if position.size == 0:
        return np.inf
    order = np.argsort(position)
    s = score[order]
    gain = np.concatenate([[0.0], np.cumsum(s)])  # sum of scores before the cut
    k = int(np.argmax(s.sum() - 2 * gain))
    return float(position[order][k]) if k < len(s) else np.inf


def _column_cuts(score: np.ndarray, region: np.ndarray, lo: int, hi: int, smooth: int) -> np.ndarray:
    """Per column, the row that best splits ``region`` into above (score > 0 wanted) and below
    (score < 0), searched in rows lo..hi, then median-smoothed across columns (a hem is one line)."""
    s = np.where(region, score, 0.0)
    gain = np.cumsum(s, axis=0)
    gain = np.concatenate([np.zeros((1, s.shape[1])), gain], 0)  # sum of scores above row y
    objective = 2 * gain - gain[-1:]
    lo, hi = max(lo, 0), min(max(hi, lo + 1), s.shape[0])
    cuts = lo + np.argmax(objective[lo:hi + 1], axis=0)
    cols = np.flatnonzero(region.any(axis=0))
    if cols.size:
        from scipy.ndimage import median_filter  # noqa: PLC0415

        cuts[cols] = median_filter(cuts[cols], size=max(3, smooth | 1), mode="nearest")
    return cuts


def _polygon_mask(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    m = np.zeros(hw, np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1)
    return m.astype(bool)


def _hair_below_chin(labels: np.ndarray, parts: np.ndarray, colours: "ColourModel", zone: np.ndarray) -> np.ndarray:
    """Long hair over the neck and shoulders (CIHP labels it hair): hair-coloured pixels, clearly unlike
    skin and garment, connected to the hair of the head."""
    if not colours.hists.keys() >= {"hair", "skin", "garment"}:
        return np.zeros(labels.shape, bool)
    hair_ll = colours.loglik("hair")
    like = (hair_ll > colours.loglik("skin") + 1.0) & (hair_ll > colours.loglik("garment") + 1.0)
    near = np.isin(parts, [Part.HEAD, Part.NECK, Part.TORSO, Part.R_UPPER_ARM, Part.L_UPPER_ARM])
    cand = cv2.medianBlur((like & zone & near).astype(np.uint8), 5).astype(bool)
    return components_touching(cand | (labels == HAIR), labels == HAIR) & cand


def _clip_llr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bounded log-likelihood ratio; 0 (no vote) for colours neither model has seen (stripes, logos)."""
    return np.where(np.maximum(a, b) > np.log(2e-4), np.clip(a - b, -4.0, 4.0), 0.0).astype(np.float32)


class PoseGeometryParser:
    """Offline parser: silhouette + skeleton give the body parts; a per-photo colour model (skin from
    the face, garment from the torso, trousers from the thighs) decides where sleeves, the neckline and
    the garment's hem are, cut once along each limb/column so the regions stay solid."""

    name = "pose-geometry"
    #: colour distributions closer than this (Bhattacharyya) cannot be told apart: geometry decides
    MAX_OVERLAP = 0.6

    def parse(self, image: np.ndarray, keypoints: Keypoints, person_mask: np.ndarray) -> ParsingResult:
        h, w = image.shape[:2]
        sil = clean_silhouette(person_mask)
        parts = skeleton_parts(keypoints, (h, w), within=sil)
        labels = np.zeros((h, w), np.uint8)
        for part, cihp in PART_TO_CIHP.items():
            labels[parts == part] = cihp
        notes = []
        if not sil.any():
            notes.append("The person silhouette is empty; parsing is unreliable.")
            return ParsingResult(labels, parts, self.name, notes)
        oval = None
        try:
            oval = face_oval(image, keypoints)
        except BackendUnavailableError:
            pass
        face = self._label_head(labels, parts, keypoints, oval, sil)
        colours = self._colour_model(image, keypoints, parts, sil, face, oval)
        if colours.hists.keys() >= {"skin", "garment"} and colours.overlap("skin", "garment") < self.MAX_OVERLAP:
            self._label_arms(labels, parts, keypoints, colours)
            self._label_neck(labels, parts, keypoints, colours, face, oval, sil)
        if colours.hists.keys() >= {"lower", "garment"} and colours.overlap("lower", "garment") < self.MAX_OVERLAP:
            self._label_hem(labels, parts, keypoints, colours)
        return ParsingResult(labels, parts, self.name, notes)

    @staticmethod
    def _label_head(labels, parts, kp, oval, sil) -> np.ndarray:
        """Face (the face-mesh oval, else the keypoint ellipse), hair = the rest of the head part."""
        h, w = labels.shape
        yy, xx = np.mgrid[0:h, 0:w]
        if oval is not None:
            face = _polygon_mask(oval, (h, w)) & sil
            chin_y = float(oval[18, 1])
            head = (parts == Part.HEAD) | face
            labels[head] = HAIR
            labels[face] = FACE
            # the head part below the chin is neck unless it is hair (decided by colour later)
            below = head & ~face & (yy > chin_y)
            labels[below] = TORSO_SKIN
            parts[below & (parts == Part.HEAD)] = Part.NECK
            parts[face] = Part.HEAD
        else:
            face = np.zeros((h, w), bool)
            geo = head_geometry(kp)
            if geo is not None:
                (cx, cy), rx, ry = geo
                face = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0) & (parts == Part.HEAD)
                labels[(parts == Part.HEAD) & ~face] = HAIR
        # hair below the top of the face is not head surface for DensePose (long hair)
        if face.any():
            top = float(np.nonzero(face)[0].min())
            mid = top + 0.4 * (float(np.nonzero(face)[0].max()) - top)
            parts[(parts == Part.HEAD) & ~face & (labels == HAIR) & (yy >= mid)] = Part.BACKGROUND
        return face

    @staticmethod
    def _colour_model(image, kp, parts, sil, face, oval) -> ColourModel:
        """Seeds: skin = the face below the eyes (no fringe), garment = the torso's core, lower = the thighs,
        hair = the head outside the face."""
        h, w = sil.shape
        model = ColourModel(image)
        yy, xx = np.mgrid[0:h, 0:w]
        a = body_scale(kp)
        min_px = max(30, int(0.01 * a * a))
        eyes = [p for p in (point(kp, REYE), point(kp, LEYE)) if p is not None]
        if face.any():
            skin = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if eyes:
                skin &= yy > max(p[1] for p in eyes) + 0.03 * a
            model.add("skin", skin, min_px)
        rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
        rh, lh = hip_points(kp)
        top, bottom = (rs + ls) / 2, (rh + lh) / 2
        axis = bottom - top
        length = max(float(np.linalg.norm(axis)), 1.0)
        t = ((xx - top[0]) * axis[0] + (yy - top[1]) * axis[1]) / length ** 2
        lateral = np.abs((xx - top[0]) * axis[1] - (yy - top[1]) * axis[0]) / length
        half_width = 0.5 * float(np.linalg.norm(ls - rs))
        core = (parts == Part.TORSO) & (t > 0.3) & (t < 0.8) & (lateral < 0.6 * half_width) & sil
        model.add("garment", core, min_px)
        thighs = np.zeros((h, w), bool)
        for hip, knee, part in ((RHIP, RKNE, Part.R_UPPER_LEG), (LHIP, LKNE, Part.L_UPPER_LEG)):
            p0, p1 = point(kp, hip), point(kp, knee, estimate=True)
            if p0 is None or p1 is None:
                continue
            seg = p1 - p0
            s = ((xx - p0[0]) * seg[0] + (yy - p0[1]) * seg[1]) / max(float(seg @ seg), 1.0)
            thighs |= (parts == part) & (s > 0.3) & (s < 0.8)
        model.add("lower", thighs & sil, min_px)
        if oval is not None:
            hair = (parts == Part.HEAD) & ~cv2.dilate(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            model.add("hair", hair & (yy < float(oval[:, 1].mean())), min_px)
        return model

    @staticmethod
    def _label_arms(labels, parts, kp, colours) -> None:
        """Along each arm, sleeve (garment) up to one cut, skin (arm) beyond it."""
        llr = _clip_llr(colours.loglik("skin"), colours.loglik("garment"))
        trousers = None
        if "lower" in colours.hists:
            lower = colours.loglik("lower")
            trousers = (lower > colours.loglik("skin") + 1.0) & (lower > colours.loglik("garment"))
            trousers = cv2.medianBlur(trousers.astype(np.uint8), 5).astype(bool)
        sides = (
            (RIGHT_ARM, (Part.R_UPPER_ARM, Part.R_LOWER_ARM, Part.R_HAND), (RSHO, RELB, RWRI)),
            (LEFT_ARM, (Part.L_UPPER_ARM, Part.L_LOWER_ARM, Part.L_HAND), (LSHO, LELB, LWRI)),
        )
        for label, arm_parts, joints in sides:
            region = np.isin(parts, arm_parts)
            pts = [point(kp, j, estimate=True) for j in joints]
            if not region.any() or any(p is None for p in pts[:2]):
                continue
            ys, xs = np.nonzero(region)
            line = [p for p in pts if p is not None]
            if len(line) == 3:  # on through the hand, ~3/4 of a forearm long
                line.append(line[2] + 0.75 * (line[2] - line[1]))
            pos = _arc_length(np.stack([xs, ys], 1).astype(np.float64), line)
            cut = best_cut(pos, llr[ys, xs])
            sleeve = pos < cut
            labels[ys[sleeve], xs[sleeve]] = UPPER
            labels[ys[~sleeve], xs[~sleeve]] = label
            if trousers is not None:  # the arm part also takes in trouser pixels beside a hanging hand
                bare = ~sleeve & trousers[ys, xs]
                labels[ys[bare], xs[bare]] = PANTS

    @staticmethod
    def _label_neck(labels, parts, kp, colours, face, oval, sil) -> None:
        """Neck = skin below the chin, in the upper torso, connected to the face; the rest of the
        neck part (collars, high necklines) is garment."""
        h, w = labels.shape
        yy = np.mgrid[0:h, 0:w][0]
        llr = _clip_llr(colours.loglik("skin"), colours.loglik("garment"))
        rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
        rh, lh = hip_points(kp)
        sho_y, hip_y = (rs[1] + ls[1]) / 2, (rh[1] + lh[1]) / 2
        zone = np.isin(parts, [Part.NECK, Part.TORSO, Part.HEAD]) & sil & ~face
        chin_y = float(oval[18, 1]) if oval is not None else float(np.nonzero(parts == Part.NECK)[0].min(initial=0))
        zone &= (yy < sho_y + 0.45 * (hip_y - sho_y)) & (yy > chin_y - 0.05 * (hip_y - sho_y))
        hair = _hair_below_chin(labels, parts, colours, sil & ~face & (yy > chin_y - 0.05 * (hip_y - sho_y)))
        labels[hair] = HAIR
        skin = zone & (llr > 0) & ~hair
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        if face.any():
            seed = cv2.dilate(face.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        else:
            seed = parts == Part.NECK
        neck = components_touching(skin, seed)
        was_neck = (labels == TORSO_SKIN) | (parts == Part.NECK)
        labels[was_neck & ~neck & zone] = UPPER
        labels[neck] = TORSO_SKIN

    @staticmethod
    def _label_hem(labels, parts, kp, colours) -> None:
        """The garment ends at one hem line (per column, smoothed); below it is the lower body."""
        h, w = labels.shape
        body = np.isin(parts, [Part.TORSO, Part.PELVIS, Part.R_UPPER_LEG, Part.L_UPPER_LEG,
                               Part.R_LOWER_LEG, Part.L_LOWER_LEG])
        llr = _clip_llr(colours.loglik("garment"), colours.loglik("lower"))
        rs, ls = point(kp, RSHO, estimate=True), point(kp, LSHO, estimate=True)
        rh, lh = hip_points(kp)
        sho_y, hip_y = (rs[1] + ls[1]) / 2, (rh[1] + lh[1]) / 2
        knees = [p[1] for p in (point(kp, RKNE, estimate=True), point(kp, LKNE, estimate=True)) if p is not None]
        lo = int(sho_y + 0.4 * (hip_y - sho_y))
        hi = int(max(knees)) if knees else h
        cuts = _column_cuts(llr, body, lo, hi, int(0.3 * body_scale(kp)))
        yy = np.mgrid[0:h, 0:w][0]
        above = body & (yy < cuts[None, :])
        below = body & ~above
        legs = np.isin(parts, [Part.R_UPPER_LEG, Part.L_UPPER_LEG, Part.R_LOWER_LEG, Part.L_LOWER_LEG])
        labels[above & (labels != TORSO_SKIN)] = UPPER
        labels[below & ~legs] = PANTS
        for part, label in ((Part.R_UPPER_LEG, RIGHT_LEG), (Part.R_LOWER_LEG, RIGHT_LEG),
                            (Part.L_UPPER_LEG, LEFT_LEG), (Part.L_LOWER_LEG, LEFT_LEG)):
            labels[below & (parts == part)] = label

