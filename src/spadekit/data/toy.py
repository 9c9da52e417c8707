"""Toy scenes: a small procedural world of label maps, instance maps and textured photos.

It exists so that spadekit works with nothing downloaded: the quick start, the tests, the bundled
demo model and the miniature reproduction of the paper all train on it. A scene is a landscape
(sky, clouds, mountains, water, sand, grass, a road) with objects standing on the ground (buildings
with windows, trees, cars, person-like figures), drawn back to front with perspective scaling.

The photo is rendered from the layout with per-image colours, per-class textures (noise, bricks,
ripples, lane marks...), shading and sensor noise, so the label → photo mapping is many-to-many
(the same class looks different from image to image) yet every class stays recognisable.

Everything is vectorised numpy (per-object work is limited to its bounding box); a 128×128 scene
takes a few milliseconds. :func:`render_scene` is deterministic: the same ``(seed, size)`` gives the
same bytes. With a ``style_seed`` the layout and the look come from separate streams, so one layout
can be photographed in several styles (the real spread that a model's samples are compared with).

Instance maps follow the COCO-Stuff recipe: stuff pixels carry their class id, every thing
(building, tree, car, person) gets its own id from :data:`FIRST_INSTANCE_ID` upwards (windows are
parts of their building's instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

TOY_CLASSES: tuple[str, ...] = (
    "sky",
    "cloud",
    "mountain",
    "water",
    "sand",
    "grass",
    "road",
    "building",
    "window",
    "tree",
    "car",
    "person",
)
"""Class names, index = label id."""

TOY_COLORS: tuple[tuple[int, int, int], ...] = (
    (110, 170, 240),  # sky
    (235, 235, 245),  # cloud
    (130, 100, 80),  # mountain
    (30, 80, 200),  # water
    (230, 210, 140),  # sand
    (60, 170, 60),  # grass
    (90, 90, 90),  # road
    (200, 90, 70),  # building
    (250, 230, 60),  # window
    (20, 100, 30),  # tree
    (220, 30, 200),  # car
    (250, 140, 20),  # person
)
"""Display colour of each class (for colour-coded label pictures), index = label id."""

SKY, CLOUD, MOUNTAIN, WATER, SAND, GRASS, ROAD, BUILDING, WINDOW, TREE, CAR, PERSON = range(len(TOY_CLASSES))
THING_CLASSES = (BUILDING, TREE, CAR, PERSON)
FIRST_INSTANCE_ID = 32
"""Things get instance ids from here upwards (stuff pixels carry their class id, below it)."""
MAX_INSTANCES = 255 - FIRST_INSTANCE_ID


class ToyScene(NamedTuple):
    """One rendered scene (H, W = the requested size)."""

    label: np.ndarray
    """(H, W) uint8 class ids, 0 .. len(TOY_CLASSES)-1."""
    instance: np.ndarray
    """(H, W) uint8 instance ids."""
    image: np.ndarray
    """(H, W, 3) uint8 RGB photo."""


def scene_seed(seed: int, index: int, split: str = "train") -> int:
    """The seed of scene ``index`` of a toy dataset; ``val`` uses a separate stream from ``train``."""
    stream = {"train": 0, "val": 1, "test": 2}.get(split)
    if stream is None:
        raise ValueError(f"unknown split {split!r}; use train, val or test")
    return int(np.random.SeedSequence([int(seed), stream, int(index)]).generate_state(1, np.uint32)[0])


# ------------------------------------------------------------------------------ helpers


def _noise(rng: np.random.Generator, h: int, w: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Smooth value noise in about [-1, 1]: a random grid bicubically upsampled to (h, w)."""
    grid = rng.standard_normal((cells_y + 1, cells_x + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)) * 0.7


def _fbm(rng: np.random.Generator, h: int, w: int, base: int = 3, octaves: int = 3, stretch: float = 1.0) -> np.ndarray:
    """Fractal noise: octaves of :func:`_noise` with halving amplitude. ``stretch`` > 1 elongates features horizontally."""
    total = np.zeros((h, w), np.float32)
    amp = 1.0
    for octave in range(octaves):
        cells = base * 2**octave
        total += amp * _noise(rng, h, w, max(1, cells), max(1, int(cells / stretch)))
        amp *= 0.5
    return total / 1.75


def _fbm1d(rng: np.random.Generator, n: int, base: int = 3, octaves: int = 4) -> np.ndarray:
    """1-D fractal noise of length ``n`` (mountain ridges)."""
    x = np.linspace(0.0, 1.0, n)
    total = np.zeros(n)
    amp = 1.0
    for octave in range(octaves):
        cells = base * 2**octave
        knots = rng.standard_normal(cells + 1)
        total += amp * np.interp(x * cells, np.arange(cells + 1), knots)
        amp *= 0.5
    return total / 1.9


def _jitter(rng: np.random.Generator, color: tuple[float, float, float], amount: float) -> np.ndarray:
    """A colour (0..255) randomly perturbed per channel and in brightness, as 0..1 floats."""
    c = np.asarray(color, np.float32) / 255.0
    c = c * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, amount * 0.35, 3)
    return np.clip(c, 0.02, 1.0).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of two colours (3,) with weights t (...,) → (..., 3)."""
    t = t[..., None]
    return a * (1 - t) + b * t


@dataclass
class _Canvas:
    """The scene being drawn: ids, instance ids and the colour of thing pixels."""

    label: np.ndarray
    instance: np.ndarray
    color: np.ndarray
    """(H, W, 3) float32 colour of thing pixels (stuff is coloured after the layout)."""
    next_id: int = FIRST_INSTANCE_ID

    def new_instance(self) -> int | None:
        if self.next_id > 255:
            return None
        self.next_id += 1
        return self.next_id - 1

    def paint(self, y0: int, x0: int, mask: np.ndarray, cls: int, inst: int | None, color) -> None:
        """Paint ``mask`` (a box at (y0, x0), clipped to the canvas) with a class, instance and colour."""
        h, w = self.label.shape
        y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
        cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
        if cy0 >= cy1 or cx0 >= cx1:
            return
        m = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        self.label[cy0:cy1, cx0:cx1][m] = cls
        if inst is not None:
            self.instance[cy0:cy1, cx0:cx1][m] = inst
        col = np.asarray(color, np.float32)
        if col.ndim == 3:
            col = col[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][m]
        self.color[cy0:cy1, cx0:cx1][m] = col


def _box(y0: float, x0: float, y1: float, x1: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Integer box origin and local pixel-centre grids (yy, xx) in absolute coordinates."""
    iy0, ix0 = int(np.floor(y0)), int(np.floor(x0))
    iy1, ix1 = max(int(np.ceil(y1)), iy0 + 1), max(int(np.ceil(x1)), ix0 + 1)
    yy, xx = np.mgrid[iy0:iy1, ix0:ix1].astype(np.float32)
    return iy0, ix0, yy + 0.5, xx + 0.5


# ------------------------------------------------------------------------------ objects


def _draw_building(
    cv: _Canvas, rng: np.random.Generator, style: np.random.Generator, base_y: float, cx: float, width: float, height: float
) -> None:
    inst = cv.new_instance()
    if inst is None:
        return
    top = base_y - height
    roof = rng.random() < 0.35 and width < 0.35 * cv.label.shape[1]
    roof_h = width * rng.uniform(0.25, 0.5) if roof else 0.0
    x0, x1 = cx - width / 2, cx + width / 2
    oy, ox, yy, xx = _box(top - roof_h, x0, base_y, x1)
    body = (yy >= top) & (xx >= x0) & (xx < x1)
    if roof:
        gable = (yy < top) & (np.abs(xx - cx) <= (yy - (top - roof_h)) / roof_h * (width / 2 + 1))
    else:
        gable = np.zeros_like(body)
    # Facade: a per-building material (brick, concrete panels or plaster) as a colour pattern.
    material = style.integers(3)
    base = _jitter(style, [(170, 80, 60), (150, 150, 155), (215, 200, 170)][material], 0.25)
    if material == 0:  # bricks: mortar lines, alternate rows offset
        brick_h = max(1.5, height / style.uniform(14, 24))
        row = np.floor((yy - top) / brick_h)
        col = np.floor((xx - x0) / (brick_h * 2.2) + 0.5 * (row % 2))
        mortar = (((yy - top) % brick_h) < 0.6) | ((((xx - x0) / (brick_h * 2.2) + 0.5 * (row % 2)) % 1.0) < 0.12)
        tone = 0.88 + 0.12 * np.sin(row * 12.9898 + col * 78.233) ** 2
        shade = np.where(mortar, 1.25, tone)
    elif material == 1:  # concrete panels with horizontal seams
        shade = 0.93 + 0.07 * np.sign(np.sin((yy - top) / max(2.0, height / 8) * np.pi))
    else:  # plaster: soft stains
        shade = 0.9 + 0.1 * np.cos((xx - x0) * 0.35 + style.uniform(0, 6)) * np.cos((yy - top) * 0.21)
    light = 1.0 + 0.12 * (xx - cx) / max(width, 1.0) * style.choice([-1, 1])  # one lit side
    colour = base * (shade * light)[..., None]
    roof_colour = _jitter(style, (120, 50, 40), 0.3) * (0.8 + 0.2 * (yy - top + roof_h) / max(roof_h, 1))[..., None]
    colour = np.where(gable[..., None], roof_colour, colour)
    cv.paint(oy, ox, body | gable, BUILDING, inst, colour)
    # Windows: a grid with margins; each window lit (warm) or dark glass with a reflection gradient.
    rows = int(rng.integers(2, 7))
    cols = max(1, int(round(width / height * rows * rng.uniform(0.7, 1.3))))
    cell_h, cell_w = height / rows, width / cols
    fill = rng.uniform(0.45, 0.7)
    win_h, win_w = max(1.0, cell_h * fill), max(1.0, cell_w * fill)
    fy = ((yy - top) % cell_h) - (cell_h - win_h) / 2
    fx = ((xx - x0) % cell_w) - (cell_w - win_w) / 2
    in_window = body & (fy >= 0) & (fy < win_h) & (fx >= 0) & (fx < win_w)
    in_window &= (yy - top) < rows * cell_h - (cell_h - win_h) / 2 - 0.5  # no window cut by the ground
    if in_window.any():
        cell = np.floor((yy - top) / cell_h) * 101 + np.floor((xx - x0) / cell_w)
        lit = (np.sin(cell * 12.9898 + style.uniform(0, 100)) * 43758.5453 % 1.0) < style.uniform(0.0, 0.6)
        glass = _jitter(style, (60, 80, 110), 0.3)
        warm = _jitter(style, (250, 220, 130), 0.12)
        reflect = 0.75 + 0.5 * np.clip(1 - (fy / win_h + fx / win_w) * 0.8, 0, 1)
        win_colour = np.where(lit[..., None], warm, glass * reflect[..., None])
        cv.paint(oy, ox, in_window, WINDOW, inst, win_colour)


def _draw_tree(cv: _Canvas, rng: np.random.Generator, style: np.random.Generator, base_y: float, cx: float, size: float) -> None:
    inst = cv.new_instance()
    if inst is None:
        return
    conifer = rng.random() < 0.4
    trunk_h = size * rng.uniform(0.2, 0.35)
    trunk_w = max(1.0, size * rng.uniform(0.08, 0.14))
    crown_w = size * (rng.uniform(0.45, 0.6) if conifer else rng.uniform(0.6, 0.9))
    top = base_y - size
    oy, ox, yy, xx = _box(top, cx - crown_w / 2 - 1, base_y, cx + crown_w / 2 + 1)
    trunk = (yy >= base_y - trunk_h - size * 0.1) & (np.abs(xx - cx) <= trunk_w / 2)
    crown_bottom = base_y - trunk_h
    if conifer:
        t = (yy - top) / max(crown_bottom - top, 1.0)
        crown = (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * crown_w / 2 + 0.5)
    else:
        ry, rx = (crown_bottom - top) / 2, crown_w / 2
        d = ((yy - (top + ry)) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2
        wobble = 0.12 * np.sin(np.arctan2(yy - top - ry, xx - cx) * rng.integers(5, 9) + rng.uniform(0, 6))
        crown = d <= 1 + wobble
    leaf = _jitter(style, [(40, 110, 40), (70, 130, 30), (30, 80, 40), (150, 120, 30)][style.integers(4)], 0.2)
    bark = _jitter(style, (90, 60, 35), 0.2)
    # Foliage: clumpy light/dark blotches, lit from the upper left.
    blotch = np.sin(xx * 1.7 + style.uniform(0, 6)) * np.sin(yy * 1.9 + style.uniform(0, 6))
    light = 1.0 + 0.25 * (-(xx - cx) / max(crown_w, 1.0) - (yy - top) / max(size, 1.0) + 0.5)
    leaf_colour = leaf * (light * (0.85 + 0.2 * blotch))[..., None]
    colour = np.where(crown[..., None], leaf_colour, bark * (0.8 + 0.2 * np.sin(yy * 2.3))[..., None])
    cv.paint(oy, ox, crown | trunk, TREE, inst, colour)


def _draw_car(cv: _Canvas, rng: np.random.Generator, style: np.random.Generator, base_y: float, cx: float, length: float) -> None:
    inst = cv.new_instance()
    if inst is None:
        return
    height = length * rng.uniform(0.45, 0.6)
    body_top = base_y - height * 0.6
    x0, x1 = cx - length / 2, cx + length / 2
    oy, ox, yy, xx = _box(base_y - height, x0, base_y, x1)
    body = (yy >= body_top) & (yy < base_y - height * 0.12) & (xx >= x0) & (xx < x1)
    cab_x0 = x0 + length * rng.uniform(0.15, 0.3)
    cab_x1 = x1 - length * rng.uniform(0.1, 0.25)
    slant = (body_top - yy) * 0.6
    cabin = (yy < body_top) & (xx >= cab_x0 + slant) & (xx < cab_x1 - slant)
    wheel_r = max(0.8, height * 0.2)
    wheels = np.zeros_like(body)
    for wx in (x0 + length * 0.22, x1 - length * 0.22):
        wheels |= (yy - (base_y - wheel_r)) ** 2 + (xx - wx) ** 2 <= wheel_r**2
    paints = [(200, 30, 30), (30, 60, 170), (230, 230, 230), (40, 40, 45), (230, 190, 40), (60, 140, 70)]
    paint = _jitter(style, paints[style.integers(len(paints))], 0.2)
    # Glossy body: brighter upper half, darker sill; dark glass in the cabin; black tyres.
    gloss = 1.15 - 0.45 * np.clip((yy - body_top) / max(height * 0.5, 1.0), 0, 1)
    colour = paint * gloss[..., None]
    glass = np.array([0.25, 0.3, 0.38], np.float32) * (1.0 + 0.4 * np.clip((xx - cab_x0) / max(cab_x1 - cab_x0, 1), 0, 1))[..., None]
    colour = np.where(cabin[..., None], glass, colour)
    colour = np.where(wheels[..., None], np.float32(0.08), colour)
    cv.paint(oy, ox, body | cabin | wheels, CAR, inst, colour)


def _draw_person(cv: _Canvas, rng: np.random.Generator, style: np.random.Generator, base_y: float, cx: float, height: float) -> None:
    inst = cv.new_instance()
    if inst is None:
        return
    w = height * rng.uniform(0.28, 0.36)
    oy, ox, yy, xx = _box(base_y - height, cx - w / 2 - 1, base_y, cx + w / 2 + 1)
    head_r = max(0.7, height * 0.11)
    head_cy = base_y - height + head_r
    head = (yy - head_cy) ** 2 + (xx - cx) ** 2 <= head_r**2 * 1.2
    shoulder = head_cy + head_r
    hip = base_y - height * 0.45
    torso = (yy >= shoulder) & (yy < hip) & (np.abs(xx - cx) <= w / 2 * (1 - 0.25 * (yy - shoulder) / max(hip - shoulder, 1)))
    leg_gap = max(0.0, w * 0.08)
    legs = (yy >= hip) & (np.abs(xx - cx) <= w * 0.35) & (np.abs(xx - cx) >= leg_gap) & (yy < base_y)
    skin = _jitter(style, [(240, 200, 170), (200, 150, 110), (120, 80, 55)][style.integers(3)], 0.1)
    shirt = _jitter(style, tuple(style.integers(30, 240, 3)), 0.1)
    trousers = _jitter(style, [(40, 50, 90), (50, 50, 50), (150, 130, 100)][style.integers(3)], 0.15)
    colour = np.where(head[..., None], skin, np.where(torso[..., None], shirt, trousers))
    colour = colour * (1.0 - 0.25 * ((xx - cx) / max(w, 1.0) + 0.5)[..., None])  # side lighting
    cv.paint(oy, ox, head | torso | legs, PERSON, inst, colour)


# ------------------------------------------------------------------------------ the scene


def render_scene(seed: int, size: int | tuple[int, int] = 128, style_seed: int | None = None) -> ToyScene:
    """Render one toy scene.

    Args:
        seed: any integer; the same (seed, size, style_seed) always gives the same arrays.
        size: side of a square scene, or (width, height).
        style_seed: None: ``seed`` draws the layout and the photo's look alike. An integer: ``seed``
            draws only the layout and ``style_seed`` the look (colours, materials, lighting, mood,
            textures, noise), so one ``seed`` with several style seeds gives one label and instance
            map photographed in several styles (the real spread of photos of one layout), and one
            style seed gives the same sky, ground and light on every layout. That layout is not the
            one ``seed`` gives without a style seed.
    Returns:
        :class:`ToyScene` with ``label`` (H, W) uint8, ``instance`` (H, W) uint8, ``image`` (H, W, 3) uint8.
    """
    w, h = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if w < 8 or h < 8:
        raise ValueError(f"toy scenes need a size of at least 8x8, got {w}x{h}")
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    # Without a style seed one stream draws everything, which keeps every seed's scene as it always
    # was. With one, the things' looks and the photo's look get streams of their own, so the same
    # style seed gives the same sky, ground and light whatever the layout.
    if style_seed is None:
        style = photo_style = rng
    else:
        style = np.random.default_rng([int(style_seed) & 0xFFFFFFFFFFFFFFFF, 1])
        photo_style = np.random.default_rng([int(style_seed) & 0xFFFFFFFFFFFFFFFF, 2])
    label = np.full((h, w), GRASS, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    horizon = h * rng.uniform(0.32, 0.6)
    sky = yy < horizon
    label[sky] = SKY

    # Clouds: horizontally stretched fractal noise above a per-image threshold, thinning near the horizon.
    if rng.random() < 0.75:
        cloud_field = _fbm(rng, h, w, base=2, octaves=3, stretch=2.5) - 0.35 * (yy / horizon)
        label[sky & (cloud_field > rng.uniform(0.1, 0.55))] = CLOUD

    # Mountains: a fractal ridge line above the horizon.
    if rng.random() < 0.65:
        ridge = horizon - h * rng.uniform(0.08, 0.3) * (0.55 + 0.45 * _fbm1d(rng, w, base=int(rng.integers(2, 5))))
        label[(yy >= ridge[None, :]) & sky] = MOUNTAIN

    # Ground: a sea at the horizon (often with a beach), a lake, or dunes.
    ground_top = np.full(w, horizon, np.float32)  # first row where objects can stand, per column
    layout = rng.random()
    if layout < 0.35:  # sea
        shore = horizon + h * rng.uniform(0.08, 0.25) + h * 0.04 * _fbm1d(rng, w, base=3, octaves=2)
        label[(yy >= horizon) & (yy < shore[None, :])] = WATER
        if rng.random() < 0.7:
            beach = shore + h * rng.uniform(0.04, 0.15) * (0.7 + 0.3 * _fbm1d(rng, w, base=2, octaves=2))
            label[(yy >= shore[None, :]) & (yy < beach[None, :])] = SAND
        ground_top = shore.astype(np.float32)
    elif layout < 0.55:  # lake
        cy, cx = rng.uniform(horizon + 0.15 * h, 0.85 * h), rng.uniform(0.2 * w, 0.8 * w)
        ry, rx = rng.uniform(0.05, 0.14) * h, rng.uniform(0.15, 0.4) * w
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        label[(d < 1.0) & ~sky] = WATER
        if rng.random() < 0.5:
            label[(d >= 1.0) & (d < rng.uniform(1.3, 1.8)) & ~sky] = SAND
    elif layout < 0.7:  # dunes and sand patches
        label[(_fbm(rng, h, w, base=2, octaves=2, stretch=2.0) > rng.uniform(-0.2, 0.2)) & ~sky] = SAND

    # Road: a perspective strip from a vanishing point on the horizon to the bottom edge.
    road = None
    if rng.random() < 0.6:
        vx = rng.uniform(0.25, 0.75) * w
        bottom_cx, half = rng.uniform(0.15, 0.85) * w, rng.uniform(0.2, 0.45) * w
        road_top = float(ground_top.max()) + 1.0
        t = np.clip((yy - horizon) / (h - horizon), 0, 1)
        centre = vx + (bottom_cx - vx) * t
        road_mask = (yy >= road_top) & (np.abs(xx - centre) <= half * t)
        label[road_mask] = ROAD
        road = (vx, bottom_cx, half, road_top)

    # Objects, far to near (painter's order), sized by perspective: 0 at the horizon, 1 at the bottom.
    canvas = _Canvas(label, label.copy(), np.zeros((h, w, 3), np.float32))
    objects: list[tuple[float, str, float]] = []  # (base_y, kind, x)

    def depth(y: float) -> float:
        return float(np.clip((y - horizon) / (h - horizon), 0.0, 1.0))

    for _ in range(int(rng.integers(0, 5))):
        x = rng.uniform(0, w)
        col = min(int(x), w - 1)
        objects.append((float(ground_top[col] + rng.uniform(0, 0.12) * h), "building", x))
    for _ in range(int(rng.integers(0, 6))):
        x = rng.uniform(0, w)
        objects.append((float(rng.uniform(ground_top[min(int(x), w - 1)] + 2, h + 0.1 * h)), "tree", x))
    if road is not None:
        vx, bottom_cx, half, road_top = road
        for _ in range(int(rng.integers(0, 5))):
            y = rng.uniform(max(road_top + 2, horizon + 0.1 * (h - horizon)), h * 1.05)
            t = depth(y)
            objects.append((float(y), "car", vx + (bottom_cx - vx) * t + rng.uniform(-0.7, 0.7) * half * t))
    for _ in range(int(rng.integers(0, 5))):
        x = rng.uniform(0.05, 0.95) * w
        objects.append((float(rng.uniform(ground_top[min(int(x), w - 1)] + 2, h * 1.02)), "person", x))
    objects.sort(key=lambda o: o[0])
    for base_y, kind, x in objects:
        d = 0.15 + 0.85 * depth(base_y)
        if kind == "building":
            _draw_building(canvas, rng, style, base_y, x, w * rng.uniform(0.12, 0.35), h * rng.uniform(0.15, 0.45))
        elif kind == "tree":
            _draw_tree(canvas, rng, style, base_y, x, max(5.0, h * rng.uniform(0.25, 0.45) * d))
        elif kind == "car":
            _draw_car(canvas, rng, style, base_y, x, max(5.0, w * rng.uniform(0.2, 0.3) * d))
        else:
            _draw_person(canvas, rng, style, base_y, x, max(6.0, h * rng.uniform(0.22, 0.32) * d))

    image = _render_photo(photo_style, canvas, horizon, road, yy, xx)
    return ToyScene(canvas.label, canvas.instance, image)


def _render_photo(rng, canvas: _Canvas, horizon: float, road, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Colour every stuff pixel with its class texture, keep the things' colours, then light and noise
    (every random number from ``rng``, the photo's look)."""
    label = canvas.label
    h, w = label.shape
    img = canvas.color
    mood = rng.choice(3, p=[0.65, 0.2, 0.15])  # day, sunset, overcast
    sky_top = _jitter(rng, [(60, 120, 220), (80, 70, 150), (150, 155, 165)][mood], 0.15)
    sky_low = _jitter(rng, [(170, 210, 245), (250, 160, 90), (200, 200, 205)][mood], 0.1)
    fine = rng.standard_normal((h, w)).astype(np.float32)
    blotch = _fbm(rng, h, w, base=4, octaves=3)

    def fill(cls: int, colour_fn) -> None:
        m = label == cls
        if m.any():
            img[m] = colour_fn(m, yy[m], xx[m])

    t_sky = lambda y: np.clip(y / max(horizon, 1.0), 0, 1) ** 1.5  # noqa: E731
    fill(SKY, lambda m, y, x: _mix(sky_top, sky_low, t_sky(y)))
    cloud = _jitter(rng, (240, 240, 245), 0.06) * (0.95 if mood != 1 else 1.0)
    cloud_tint = sky_low if mood == 1 else np.array([0.6, 0.62, 0.68], np.float32)
    fill(CLOUD, lambda m, y, x: _mix(cloud, cloud_tint, np.clip(0.35 + 0.6 * blotch[m], 0, 1)))
    rock = _jitter(rng, [(120, 100, 85), (95, 100, 115), (140, 120, 100)][rng.integers(3)], 0.2)
    snow_line = horizon - rng.uniform(0.1, 0.35) * h
    streaks = 0.85 + 0.15 * np.sin(xx * rng.uniform(0.6, 1.4) + 4 * blotch)

    def mountain(m, y, x):
        haze = np.clip((y - (horizon - 0.3 * h)) / (0.3 * h), 0, 1) * 0.45  # atmospheric perspective
        c = rock * streaks[m][:, None] * (0.85 + 0.2 * blotch[m][:, None])
        c = np.where((y < snow_line)[:, None] & (blotch[m] > -0.2)[:, None], np.float32(0.93), c)
        return c * (1 - haze[:, None]) + sky_low * haze[:, None]

    fill(MOUNTAIN, mountain)
    deep = _jitter(rng, [(25, 70, 130), (20, 90, 110), (40, 60, 90)][rng.integers(3)], 0.15)
    ripple_f = rng.uniform(0.8, 1.6)

    def water(m, y, x):
        depth = np.clip((y - horizon) / max(h - horizon, 1.0), 0, 1)
        ripples = 0.5 + 0.5 * np.sin(y * ripple_f * (1 + 2 * depth) + 3 * blotch[m] + x * 0.05)
        c = _mix(sky_low, deep, np.clip(0.3 + 0.7 * depth, 0, 1))
        return c * (0.85 + 0.3 * ripples)[:, None]

    fill(WATER, water)
    sand = _jitter(rng, (225, 200, 150), 0.12)
    fill(SAND, lambda m, y, x: sand * (0.92 + 0.05 * np.sin(x * 0.3 + y * 0.9 + 5 * blotch[m]) + 0.05 * fine[m])[:, None])
    grass = _jitter(rng, [(70, 150, 50), (110, 150, 60), (60, 120, 45), (150, 150, 70)][rng.integers(4)], 0.15)
    grass_dark = grass * 0.6

    def grass_fn(m, y, x):
        patches = np.clip(0.5 + 0.6 * blotch[m], 0, 1)
        return _mix(grass, grass_dark, patches) * (0.9 + 0.12 * fine[m])[:, None]

    fill(GRASS, grass_fn)
    asphalt = _jitter(rng, (85, 85, 90), 0.2)
    mark = _jitter(rng, [(240, 240, 240), (240, 200, 60)][rng.integers(2)], 0.05)

    def road_fn(m, y, x):
        c = asphalt * (0.92 + 0.08 * fine[m] + 0.06 * blotch[m])[:, None]
        if road is not None:
            vx, bottom_cx, half, _ = road
            t = np.clip((y - horizon) / (h - horizon), 1e-3, 1)
            centre = vx + (bottom_cx - vx) * t
            # Dashes equally spaced in depth: the phase is 1/t, so they shrink towards the horizon.
            dash = (np.abs(x - centre) <= np.maximum(0.35, half * t * 0.04)) & ((1.0 / t) % 0.8 < 0.4)
            c = np.where(dash[:, None], mark, c)
        return c

    fill(ROAD, road_fn)

    # Texture on things too (their colours were set while drawing), then global light and sensor noise.
    things = label >= BUILDING
    img[things] *= (0.94 + 0.06 * fine[things] + 0.05 * blotch[things])[:, None]
    sun = rng.uniform(-1, 1)
    light = 1.0 + 0.12 * sun * (xx / w - 0.5) * 2
    exposure = rng.uniform(0.85, 1.1) * np.array([1.0, 0.97, 0.9] if mood == 1 else [1.0, 1.0, 1.0], np.float32)
    img = img * (light[..., None] * exposure)
    img += rng.normal(0, rng.uniform(0.008, 0.025), img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------ writing a dataset


def write_toy_dataset(
    out: str | Path,
    num_scenes: int,
    size: int = 128,
    seed: int = 0,
    split: str = "train",
    image_format: str = "png",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write toy scenes in the ``folder`` format: ``labels/``, ``images/``, ``instances/``, ``palette.json``.

    File ``i`` (``%06d``) is ``render_scene(scene_seed(seed, i, split), size)``, the same scene that
    :class:`~spadekit.data.dataset.ToySceneDataset` generates in memory. Everything is written to a
    staging folder beside ``out`` and moved into place at the end, so a failure leaves nothing half-written.

    Args:
        image_format: ``png`` (lossless, default) or ``jpg`` (quality 95).
        overwrite: write into a non-empty ``out`` (files with the same names are replaced).
    Returns:
        ``out``.
    """
    import json
    import os
    import shutil

    from tqdm import tqdm

    from spadekit.errors import DataError
    from spadekit.io import make_temp_dir

    if image_format not in ("png", "jpg"):
        raise ValueError("image_format must be png or jpg")
    if num_scenes < 1:
        raise ValueError("num_scenes must be >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: exists and is not empty (use --force to write into it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        for sub in ("labels", "images", "instances"):
            (staging / sub).mkdir()
        for i in tqdm(range(num_scenes), desc="toy scenes", unit="scene", disable=not progress):
            scene = render_scene(scene_seed(seed, i, split), size)
            name = f"{i:06d}"
            Image.fromarray(scene.label, mode="L").save(staging / "labels" / f"{name}.png", compress_level=1)
            Image.fromarray(scene.instance, mode="L").save(staging / "instances" / f"{name}.png", compress_level=1)
            photo = Image.fromarray(scene.image, mode="RGB")
            if image_format == "png":
                photo.save(staging / "images" / f"{name}.png", compress_level=1)
            else:
                photo.save(staging / "images" / f"{name}.jpg", quality=95)
        palette = {"names": list(TOY_CLASSES), "colors": [list(c) for c in TOY_COLORS]}
        (staging / "palette.json").write_text(json.dumps(palette, indent=1) + "\n")
        meta = {"generator": "spadekit toy scenes", "scenes": num_scenes, "size": size, "seed": seed, "split": split}
        (staging / "toy.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if not out.exists():
            os.replace(staging, out)
        else:  # --force into an existing folder: move file by file (each rename is atomic)
            for path in sorted(staging.rglob("*")):
                target = out / path.relative_to(staging)
                if path.is_dir():
                    target.mkdir(exist_ok=True)
                else:
                    os.replace(path, target)
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
