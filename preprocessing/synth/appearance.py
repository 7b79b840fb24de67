"""How a synthetic person looks: per-vertex albedo with cues to which way the person faces.

A body of one skin colour and one colour per garment looks the same from the front and from the
back (and, mirrored, from the left and the right), so a picture cannot tell the root orientation
and a regressor learns the average of the two. Real people are not like that, and neither is
this stand-in: every person gets, seeded and varied,

- **hair** over the back and top of the head, in one of several hair colours, and a **face**
  at the front: skin with two dark eyes and a mouth;
- a **top** whose front differs from its back: a print on the chest or a button placket, and
  sometimes a V neckline of skin;
- **trousers** with two darker back pockets and, on most, a belt whose buckle is at the front
  (a cue right at the pelvis, whose part feature PARE regresses the root rotation from);
- **shoes** with a toe cap of another colour, so the feet show where the toes point.

Features are placed by the vertex positions of the rest-pose template (SMPL's frame: y up, z
forward, x the person's left), so they follow the body when it is posed. They only colour
vertices: topology, part labels and geometry are untouched, so every renderer guarantee
(exact labels, determinism) holds as before.
"""

from __future__ import annotations

import numpy as np

SKIN_TONES = np.array(
    [(255, 224, 196), (241, 194, 125), (234, 192, 134), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 51, 23)],
    dtype=np.float64,
)
HAIR_COLORS = np.array(
    [(20, 16, 14), (45, 30, 20), (80, 50, 28), (120, 80, 40), (200, 160, 90), (150, 60, 25), (150, 150, 150)],
    dtype=np.float64,
)
# Body parts (SMPL joint regions) by what covers them.
HEAD = 15
SKIN_PARTS = (12, 15, 20, 21, 22, 23)  # neck, head, hands, fingers
TOP_PARTS = (3, 6, 9, 13, 14, 16, 17)  # spine, collars, upper arms
SLEEVE_PARTS = (18, 19)  # forearms: sleeves or skin
BOTTOM_PARTS = (0, 1, 2)  # pelvis, thighs
LEG_PARTS = (4, 5)  # shins: trousers or skin
SHOE_PARTS = (7, 8, 10, 11)  # feet and toes
TOE_PARTS = (10, 11)
CHEST_PARTS = (6, 9)  # spine2, spine3


def _contrast(rng: np.random.Generator, color: np.ndarray) -> np.ndarray:
    """A colour clearly different from ``color`` (0..255): its inverse, shifted a little."""
    other = 255.0 - color + rng.uniform(-30, 30, size=3)
    if np.abs(other - color).max() < 90:
        other = np.where(color > 127, 25.0, 230.0)
    return np.clip(other, 0, 255)


def _head_frame(template: np.ndarray, part_map: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centre (3,), radius, front z) of the head in the template."""
    head = template[part_map == HEAD]
    centre = 0.5 * (head.min(axis=0) + head.max(axis=0))
    centre[2] = np.median(head[:, 2])  # the nose sticks out at the front: not the skull's centre
    radius = 0.5 * (head[:, 0].max() - head[:, 0].min())
    return centre, float(radius), float(head[:, 2].max())


def face_and_hair(rng: np.random.Generator, template: np.ndarray, part_map: np.ndarray) -> dict[str, np.ndarray]:
    """(V,) bool masks ``hair``, ``eyes``, ``mouth`` on the head, drawn per person."""
    head = part_map == HEAD
    centre, radius, _ = _head_frame(template, part_map)
    offset = (template - centre) / radius  # head-relative, about -1..1 on the head
    x, y, z = offset[:, 0], offset[:, 1], offset[:, 2]
    hairline = rng.uniform(0.45, 0.75)  # how far down the forehead the hair comes (y, head radii)
    back = rng.uniform(-0.15, 0.25)  # hair covers the head behind this z (head radii)
    hair = head & ((z < back) | (y > hairline))
    front = head & (z > 0.35) & ~hair
    eye_y, eye_x = rng.uniform(0.05, 0.25), rng.uniform(0.28, 0.4)
    eyes = front & (((np.abs(x) - eye_x) ** 2 + (y - eye_y) ** 2) < 0.16**2)
    mouth_y = eye_y - rng.uniform(0.5, 0.65)
    mouth = front & ((x / 0.32) ** 2 + ((y - mouth_y) / 0.1) ** 2 < 1.0)
    return {"hair": hair, "eyes": eyes, "mouth": mouth}


def garment_marks(rng: np.random.Generator, template: np.ndarray, part_map: np.ndarray) -> dict[str, np.ndarray]:
    """(V,) bool masks of the front and back garment details: ``print``, ``placket``, ``neckline``,
    ``pockets``, ``belt``, ``buckle``, ``toe_caps`` (only some are set for a given person)."""
    x, y, z = template[:, 0], template[:, 1], template[:, 2]
    chest = np.isin(part_map, CHEST_PARTS)
    torso = np.isin(part_map, (3, *CHEST_PARTS))
    chest_y = y[chest]
    top, bottom = chest_y.max(), chest_y.min()
    front_z = np.median(z[chest])
    marks = {
        name: np.zeros(len(template), bool)
        for name in ("print", "placket", "neckline", "pockets", "belt", "buckle", "toe_caps")
    }
    if rng.random() < 0.65:  # a print on the chest: a disc or a band
        cy = bottom + rng.uniform(0.35, 0.6) * (top - bottom)
        size = rng.uniform(0.045, 0.075)
        if rng.random() < 0.5:
            marks["print"] = chest & (z > front_z) & ((x**2 + (y - cy) ** 2) < size**2)
        else:
            marks["print"] = chest & (z > front_z) & (np.abs(y - cy) < size * 0.6)
    else:  # a button placket down the front
        marks["placket"] = torso & (z > front_z) & (np.abs(x) < 0.012)
    if rng.random() < 0.5:  # a V neckline of skin
        marks["neckline"] = chest & (z > front_z) & (y > top - 0.09 + 1.2 * np.abs(x))
    hips = np.isin(part_map, BOTTOM_PARTS)
    pocket_y = y[part_map == 0].min() + rng.uniform(0.1, 0.15)
    marks["pockets"] = hips & (z < -0.04) & (np.abs(np.abs(x) - 0.075) < 0.04) & (np.abs(y - pocket_y) < 0.05)
    if rng.random() < 0.8:
        pelvis = part_map == 0
        marks["belt"] = pelvis & (y > y[pelvis].max() - rng.uniform(0.03, 0.045))
        marks["buckle"] = marks["belt"] & (z > 0.0) & (np.abs(x) < 0.028)
    toes = np.isin(part_map, TOE_PARTS)
    marks["toe_caps"] = toes
    return marks


def random_vertex_colors(rng: np.random.Generator, part_map: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(V, 3) albedo in [0, 1] of one person: skin, hair and face, garments with front and back details,
    shoes with toe caps, slightly varied per vertex.

    Args:
        part_map: (V,) part 0..23 of each vertex.
        template: (V, 3) rest-pose vertices (the body model's template), which place the details.
    """
    part_map = np.asarray(part_map)
    template = np.asarray(template, dtype=np.float64)
    part_colors = np.zeros((24, 3))
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    top, bottom, shoes = rng.uniform(20, 235, size=(3, 3))
    part_colors[list(SKIN_PARTS)] = skin
    part_colors[list(TOP_PARTS)] = top
    part_colors[list(SLEEVE_PARTS)] = top if rng.random() < 0.6 else skin
    part_colors[list(BOTTOM_PARTS)] = bottom
    part_colors[list(LEG_PARTS)] = bottom if rng.random() < 0.7 else skin
    part_colors[list(SHOE_PARTS)] = shoes * 0.5
    colors = part_colors[part_map]

    head = face_and_hair(rng, template, part_map)
    hair = HAIR_COLORS[rng.integers(len(HAIR_COLORS))] * rng.uniform(0.85, 1.1)
    colors[head["hair"]] = hair
    colors[head["eyes"]] = (30.0, 25.0, 25.0)
    colors[head["mouth"]] = skin * np.array([0.75, 0.45, 0.45])
    marks = garment_marks(rng, template, part_map)
    colors[marks["print"]] = _contrast(rng, top)
    colors[marks["placket"]] = top * 0.45
    colors[marks["neckline"]] = skin
    colors[marks["pockets"]] = bottom * 0.55
    colors[marks["belt"]] = (rng.uniform(15, 90), rng.uniform(10, 60), rng.uniform(5, 40))
    colors[marks["buckle"]] = (225.0, 215.0, 170.0)
    colors[marks["toe_caps"]] = _contrast(rng, shoes * 0.5)
    colors = colors + rng.normal(0.0, 6.0, size=(len(part_map), 3))
    return np.clip(colors, 0, 255) / 255.0
