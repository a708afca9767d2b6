"""Seeded N-MNIST-like event frames: rendered digits seen by a simulated event camera during saccades.

N-MNIST (Orchard et al. 2015, read by ``tonic.datasets.NMNIST``) is an ATIS camera on a pan-tilt
unit looking at MNIST digits on a monitor while it makes three saccades of ~105 ms each along a
triangle; the 34x34 sensor crop holds the 28x28 digit plus the motion. This module makes inputs
of that kind without downloading anything, for checks that need *in-distribution* inputs for
networks trained on N-MNIST (e.g. the NIR paper's ``cnn_sinabs.nir``):

1. **Digit.** A random digit 0-9 drawn with matplotlib (Agg) in a random bundled font (no bold
   faces) with random extra stroke width and rotation (a 1 is drawn as a pen stroke instead:
   the fonts' 1 has a base bar), rendered 4x supersampled, then normalised like MNIST: its ink
   box scaled so that the longer side is ``glyph_size`` px (MNIST: 20), placed in a 28x28 image
   by its centre of mass, intensity in [0, 1] (white digit on black).
2. **Motion.** The 28x28 image moves inside the 34x34 field along N-MNIST's saccade triangle,
   ``(0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0)`` px in (x, y), each leg ``saccade_ms`` long (the
   constants of tonic's ``NMNIST`` ``stabilize``, ported from Orchard's code), with a random
   offset of the whole path and a small random jitter (px) of every vertex. Sub-pixel positions
   use bilinear interpolation (the optics' blur).
3. **Sensor.** A DVS pixel model on ``log(background + contrast * image)``: every pixel keeps a
   reference level; per-pixel ON / OFF thresholds drawn around ``threshold`` with a relative
   mismatch; in each simulation step (``dt_ms / substeps``) a pixel emits
   ``floor(|L - L_ref| / C)`` events of the sign of the change (at most
   ``max_events_per_step``, the refractory limit; the rest carries over); background activity
   adds Poisson noise events (``noise_hz`` per pixel, random polarity).
4. **Frames.** Events are counted per ``dt_ms`` bin and polarity, not clipped: the NIR paper fed
   this network ``tonic.transforms.ToFrame(sensor_size=NMNIST.sensor_size, time_window=1e3)``
   frames (counts in 1 ms bins) and used the first 300 (``paper/02_cnn/cnn_numbers.ipynb``,
   ``sinabs.py``, ``s2_apply.py``, ``norse_apply.ipynb`` in GitHub ``neuromorphs/NIR``).
   Which channel holds ON events is :attr:`NMNISTLikeConfig.on_channel`, default **0**. tonic's
   ``ToFrame`` puts polarity value ``p`` in channel ``p``, and ON is usually ``p = 1``; but with
   ON in channel 1 the paper's ``cnn_sinabs.nir`` reads these digits at 64 % (100 samples,
   seed 1), with ON in channel 0 at 82-91 %. Either N-MNIST's polarity bit is the other way
   round or the apparent motion is (the triangle run backwards swaps leading and trailing
   edges); count frames cannot tell the two apart, so the channel is chosen by the network
   this module serves, and it is a parameter.

Defaults (threshold 0.8, ~3,000 events per sample) were set by the float network's accuracy on
seed 1 (not on the suite's seed 0, and never by quantization results): 88-91 % on 100-300 samples.

Determinism: sample ``i`` depends only on ``(seed, i)`` (its own ``numpy.random.Generator``),
not on how many samples are asked for; labels are ``i % 10``. Matplotlib's rasteriser is
deterministic for a given matplotlib/freetype version, so frames are reproducible on one
installation (a different freetype may move anti-aliasing by a grey level).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

#: (family, weight, style) choices for the digit: matplotlib's bundled fonts.
#: No bold faces: at MNIST's 20 px their strokes are ~4 px and fill the counters of 6, 8, 9
#: (MNIST's pen strokes are ~2-3 px).
FONTS: Tuple[Tuple[str, str, str], ...] = (
    ("DejaVu Sans", "normal", "normal"), ("DejaVu Sans", "normal", "oblique"), ("DejaVu Serif", "normal", "normal"),
    ("DejaVu Sans Mono", "normal", "normal"), ("STIXGeneral", "normal", "normal"), ("STIXGeneral", "normal", "italic"),
    ("cmss10", "normal", "normal"), ("cmr10", "normal", "normal"),
)
SENSOR = 34          #: sensor side (px)
DIGIT = 28           #: digit image side (px), as MNIST
_SS = 4              #: supersampling factor of the glyph renderer


@dataclass(frozen=True)
class NMNISTLikeConfig:
    """Parameters of the digits, the saccades and the sensor (defaults: the ones used in the suite).

    Attributes:
        n_ticks: number of frames T.
        dt_ms: frame length (ms): the NIR paper's 1 ms.
        substeps: sensor simulation steps per frame.
        saccade_ms: duration of one saccade leg (ms).
        glyph_size: (min, max) of the digit's longer ink side (px); MNIST normalises to 20.
        stroke_px: (min, max) extra stroke width (px at 28x28) added around the glyph's outline.
        rotation_deg: max |rotation| (degrees).
        offset_px: max |random offset| of the whole trajectory (px, uniform, per axis).
        jitter_px: standard deviation of each saccade vertex's jitter (px).
        background: monitor black level (relative intensity; white = background + contrast).
        contrast: (min, max) of the digit's contrast.
        threshold: nominal log-intensity contrast threshold of a pixel.
        threshold_mismatch: relative standard deviation of the per-pixel thresholds.
        max_events_per_step: refractory limit: events per pixel and simulation step.
        noise_hz: background activity rate per pixel (Hz), each event of random polarity.
        on_channel: the polarity channel that holds ON events (the other holds OFF); see the
            module docstring for why the default is 0.
    """

    n_ticks: int = 300
    dt_ms: float = 1.0
    substeps: int = 4
    saccade_ms: float = 105.0
    glyph_size: Tuple[float, float] = (17.0, 21.0)
    stroke_px: Tuple[float, float] = (0.0, 1.2)
    rotation_deg: float = 12.0
    offset_px: float = 1.0
    jitter_px: float = 0.4
    background: float = 0.05
    contrast: Tuple[float, float] = (0.7, 1.0)
    threshold: float = 0.8
    threshold_mismatch: float = 0.15
    max_events_per_step: int = 2
    noise_hz: float = 0.5
    on_channel: int = 0


DEFAULT_CONFIG = NMNISTLikeConfig()


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` (independent of the batch)."""
    return np.random.default_rng([int(seed), 0x4E4D, int(index)])


def _render(digit: int, font: Tuple[str, str, str], size_pt: float, stroke_pt: float, rotation: float,
            canvas_px: int) -> np.ndarray:
    """Ink image (canvas_px, canvas_px) in [0, 1] of one digit, drawn with matplotlib's Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import matplotlib.patheffects as pe

    fig = Figure(figsize=(1, 1), dpi=canvas_px, facecolor="black")
    FigureCanvasAgg(fig)
    effects = [pe.withStroke(linewidth=stroke_pt, foreground="white")] if stroke_pt > 0 else []
    fig.text(0.5, 0.5, str(int(digit)), color="white", fontsize=size_pt, family=font[0], weight=font[1],
             style=font[2], rotation=rotation, rotation_mode="anchor", ha="center", va="center",
             path_effects=effects)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., 0].astype(np.float64) / 255.0


def _render_one(rng: np.random.Generator, height_px: float, width_px: float, rotation: float,
                canvas_px: int) -> np.ndarray:
    """A handwritten-style "1": one pen stroke (slanted by ``rotation``), with a short flag at the
    top in 40 % of the samples and no base (the fonts' "1" has a base bar, which MNIST's rarely
    have; this network reads it as a 2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(1, 1), dpi=canvas_px, facecolor="black")
    FigureCanvasAgg(fig)
    h = height_px / canvas_px
    a = np.deg2rad(rotation)
    top = np.array([0.5 - 0.5 * h * np.sin(a), 0.5 + 0.5 * h * np.cos(a)])
    bottom = np.array([0.5 + 0.5 * h * np.sin(a), 0.5 - 0.5 * h * np.cos(a)])
    xs, ys = [bottom[0], top[0]], [bottom[1], top[1]]
    if rng.random() < 0.4:
        f = float(rng.uniform(0.2, 0.35)) * h
        xs.append(top[0] - f * np.cos(a + 0.6))
        ys.append(top[1] - f * np.sin(a + 0.6))
        xs, ys = [xs[2], xs[1], xs[0]], [ys[2], ys[1], ys[0]]
    lw = width_px / (canvas_px / 72.0)
    fig.add_artist(Line2D(xs, ys, transform=fig.transFigure, color="white", linewidth=lw,
                          solid_capstyle="round", solid_joinstyle="round"))
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., 0].astype(np.float64) / 255.0


def render_digit(digit: int, rng: np.random.Generator, config: NMNISTLikeConfig = DEFAULT_CONFIG) -> np.ndarray:
    """A random MNIST-style image of ``digit``: float64 (28, 28) in [0, 1], white on black.

    Normalised like MNIST: the ink box is scaled so that its longer side is a random size in
    ``config.glyph_size`` px, and the image is placed by its centre of mass at the centre.
    Digits other than 1 come from a random font of :data:`FONTS`; a 1 is a pen stroke.
    """
    font = FONTS[int(rng.integers(len(FONTS)))]
    rot = float(rng.uniform(-config.rotation_deg, config.rotation_deg))
    target = float(rng.uniform(*config.glyph_size)) * _SS
    stroke = float(rng.uniform(*config.stroke_px))
    canvas = 3 * DIGIT * _SS  # big enough that nothing is cut at any size used below
    if int(digit) == 1:
        ink = _render_one(rng, target, (2.0 + stroke) * _SS, rot, canvas)
    else:
        # first pass at a probe size: measure the ink box, then draw at the size that gives `target`
        probe_pt = 40.0
        ink = _render(digit, font, probe_pt, 0.0, rot, canvas)
        rows, cols = np.nonzero(ink > 0.5)
        extent = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
        size_pt = probe_pt * target / extent
        px_per_pt = canvas / 72.0
        stroke_pt = stroke * _SS / px_per_pt * 2.0  # withStroke's linewidth is the full width (both sides)
        ink = _render(digit, font, size_pt, stroke_pt, rot, canvas)
    # place by the centre of mass on the supersampled 28x28 grid, then average 4x4 blocks
    total = ink.sum()
    cy = float((ink.sum(axis=1) * np.arange(canvas)).sum() / total)
    cx = float((ink.sum(axis=0) * np.arange(canvas)).sum() / total)
    half = DIGIT * _SS / 2.0
    y0, x0 = int(round(cy + 0.5 - half)), int(round(cx + 0.5 - half))
    big = np.zeros((DIGIT * _SS, DIGIT * _SS))
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + DIGIT * _SS, canvas), min(x0 + DIGIT * _SS, canvas)
    big[ys - y0:ye - y0, xs - x0:xe - x0] = ink[ys:ye, xs:xe]
    return big.reshape(DIGIT, _SS, DIGIT, _SS).mean(axis=(1, 3))


def saccade_path(t_ms: np.ndarray, rng: np.random.Generator, config: NMNISTLikeConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Position (x, y) in px of the digit image's top-left corner at times ``t_ms``: shape (len(t), 2).

    N-MNIST's triangle (0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0), one leg per ``saccade_ms``, at
    constant speed, every vertex jittered, the whole path offset so that the digit's mean
    position is centred in the 34x34 field (plus a random offset), and held still after the third leg.
    """
    verts = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
    verts = verts + rng.normal(0.0, config.jitter_px, verts.shape)
    verts[3] = verts[0]
    # centre: the time-averaged position of the triangle is (3.5, 7/3); the digit (28 px) in 34 px
    centre = (SENSOR - DIGIT) / 2.0 - np.array([3.5, 7.0 / 3.0])
    verts = verts + centre + rng.uniform(-config.offset_px, config.offset_px, 2)
    leg = np.clip(t_ms / config.saccade_ms, 0.0, 3.0)
    k = np.minimum(leg.astype(int), 2)
    frac = (leg - k)[:, None]
    return verts[k] * (1.0 - frac) + verts[k + 1] * frac


def _interp_matrix(offset: np.ndarray) -> np.ndarray:
    """Bilinear resampling matrices (K, 34, 28): row ``x`` holds the weights of the image pixels
    seen by sensor pixel ``x`` when the image starts at sub-pixel ``offset[k]`` (zero outside)."""
    u = np.arange(SENSOR, dtype=np.float64)[None, :] - offset[:, None]  # (K, 34) image coordinate
    iu = np.floor(u).astype(np.int64)
    fu = u - iu
    cols = np.arange(DIGIT)[None, None, :]
    return (np.where(cols == iu[..., None], 1.0 - fu[..., None], 0.0)
            + np.where(cols == iu[..., None] + 1, fu[..., None], 0.0))


def place(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The 28x28 ``image`` with its top-left corner at sub-pixel positions ``xy`` (K, 2) = (x, y)
    in the 34x34 field (bilinear interpolation, zero outside): float64 (K, 34, 34)."""
    wx = _interp_matrix(xy[:, 0])
    wy = _interp_matrix(xy[:, 1])
    return wy @ image @ wx.transpose(0, 2, 1)


def pixel_thresholds(rng: np.random.Generator, config: NMNISTLikeConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Per-pixel ON and OFF log-contrast thresholds of one sensor: float64 (2, 34, 34) = (ON, OFF, h, w)."""
    c = config
    mis = 1.0 + c.threshold_mismatch * rng.standard_normal((2, SENSOR, SENSOR))
    return c.threshold * np.maximum(mis, 0.3)


def dvs_frames(scenes: np.ndarray, thresholds: np.ndarray, config: NMNISTLikeConfig = DEFAULT_CONFIG
               ) -> np.ndarray:
    """Event counts (without background noise) of the DVS model watching ``scenes``.

    Args:
        scenes: relative intensity (batch, steps, 34, 34) in [0, 1], ``steps = n_ticks * substeps + 1``
            (step 0 is the state the pixels are adapted to at t = 0).
        thresholds: (batch, 2, 34, 34) ON and OFF thresholds (:func:`pixel_thresholds`).
    Returns:
        int64 (batch, n_ticks, 2, 34, 34) = (batch, time, polarity OFF/ON, height, width): events
        per frame, before :attr:`NMNISTLikeConfig.on_channel` reordering.
    """
    c = config
    logi = np.ascontiguousarray(np.log(c.background + scenes).transpose(1, 0, 2, 3))  # (steps, batch, h, w)
    c_on, c_off = thresholds[:, 0], thresholds[:, 1]
    ref = logi[0].copy()
    on = np.zeros((c.n_ticks, *ref.shape), dtype=np.float32)  # small integer counts: exact in float32
    off = np.zeros((c.n_ticks, *ref.shape), dtype=np.float32)
    cap = float(c.max_events_per_step)
    for s in range(1, logi.shape[0]):
        d = logi[s] - ref
        n_on = np.minimum(np.floor(np.maximum(d, 0.0) / c_on), cap)
        n_off = np.minimum(np.floor(np.maximum(-d, 0.0) / c_off), cap)
        ref += n_on * c_on - n_off * c_off
        tick = (s - 1) // c.substeps
        on[tick] += n_on
        off[tick] += n_off
    return np.stack([off, on], axis=2).transpose(1, 0, 2, 3, 4).astype(np.int64)


def _scene(index: int, seed: int, config: NMNISTLikeConfig) -> Tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Scene (steps, 34, 34), thresholds (2, 34, 34) and the sample's generator (for the noise)."""
    rng = sample_rng(seed, index)
    image = render_digit(int(index) % 10, rng, config) * float(rng.uniform(*config.contrast))
    steps = config.n_ticks * config.substeps
    t = np.arange(steps + 1) * (config.dt_ms / config.substeps)
    return place(image, saccade_path(t, rng, config)), pixel_thresholds(rng, config), rng


def nmnist_like(n: int, seed: int = 0, config: NMNISTLikeConfig = DEFAULT_CONFIG, start: int = 0,
                progress: bool = False, chunk: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` N-MNIST-like samples (indices ``start .. start + n - 1``).

    Args:
        n: number of samples; sample ``i`` depends only on ``(seed, i)``.
        seed: generator seed.
        config: digit, saccade and sensor parameters.
        start: index of the first sample.
        progress: show a tqdm bar.
        chunk: samples whose sensor loop runs together (memory ~ chunk x 11 MB; no effect on the result).

    Returns:
        frames uint8 (n, T, 2, 34, 34) = (batch, time, polarity, height, width): event counts per
        ``config.dt_ms`` frame, not clipped (saturating at 255); polarity channel ``config.on_channel``
        holds the ON events. labels int64 (n,) = index % 10.
    """
    c = config
    if c.on_channel not in (0, 1) or c.n_ticks < 1 or c.substeps < 1:
        from s2common.errors import InputDataError

        raise InputDataError(f"bad N-MNIST-like config: on_channel={c.on_channel!r} (0 or 1), n_ticks={c.n_ticks!r}, "
                             f"substeps={c.substeps!r} (>= 1)", rule="bad-option",
                             hint="use NMNISTLikeConfig's defaults or dataclasses.replace(DEFAULT_CONFIG, ...)")
    idx = list(range(int(start), int(start) + int(n)))
    frames = np.zeros((len(idx), c.n_ticks, 2, SENSOR, SENSOR), dtype=np.uint8)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(idx), desc="nmnist-like")
    lam = c.noise_hz * c.dt_ms * 1e-3 / 2.0  # background events per pixel, polarity and frame
    order = [0, 1] if c.on_channel == 1 else [1, 0]
    for lo in range(0, len(idx), max(int(chunk), 1)):
        part = [_scene(i, seed, c) for i in idx[lo:lo + chunk]]
        counts = dvs_frames(np.stack([p[0] for p in part]), np.stack([p[1] for p in part]), c)
        for j, (_, _, rng) in enumerate(part):
            if lam > 0:
                counts[j] += rng.poisson(lam, counts[j].shape)
        frames[lo:lo + len(part)] = np.minimum(counts, 255)[:, :, order]
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return frames, np.asarray([i % 10 for i in idx], dtype=np.int64)


__all__ = ["NMNISTLikeConfig", "DEFAULT_CONFIG", "nmnist_like", "render_digit", "saccade_path", "place",
           "pixel_thresholds", "dvs_frames", "FONTS"]
