"""A generated DVS-gesture stand-in: a simulated event camera watching a moving "person".

The scene is a 128×128 intensity image made of separable Gaussian blobs: a head and a torso
that sway slowly, two arms drawn as chains of blobs from the shoulders to the hands, and an
optional distractor blob crossing the field of view. The hands follow class-specific
trajectories that mirror the 11 classes of IBM DVS Gesture (see :data:`CLASSES`); every sample
draws its own position, size, speed, phase, amplitude, contrast, noise rate and distractor.

The sensor model (per sample, vectorised over a batch of samples):

* log intensity ``L = log(I)``; every pixel keeps a reference level ``L_ref``;
* per-pixel ON / OFF contrast thresholds ``C_on``, ``C_off`` drawn around a nominal value with a
  relative mismatch (fixed-pattern noise);
* in each simulation step (``duration / n_steps``), a pixel emits ``n = floor(|L - L_ref| / C)``
  events of the sign of the change, ``L_ref`` moves by ``n·C``; the crossing times are linearly
  interpolated within the step;
* refractory period ``refractory_us``: events of one pixel are at least that far apart, which
  caps ``n`` per step (the remaining change is carried over to the next step);
* timing jitter: Gaussian, ``jitter_us`` standard deviation;
* background activity: uniform Poisson noise events, rate drawn per sample.

Events are a numpy structured array in tonic's DVS Gesture dtype (``x, y`` int16 pixel
coordinates on the 128×128 sensor, ``p`` bool polarity, ``t`` int64 µs), sorted by time, so
tonic's transforms apply unchanged.

Determinism: sample ``i`` of split ``s`` depends only on ``(seed, s, i)`` (its own
``numpy.random.Generator``), not on the batch size or on how many samples are asked for.
Labels are ``i % 11`` (exactly balanced for multiples of 11).
"""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

#: Class names, in DVS Gesture's order (tonic.datasets.DVSGesture.classes).
CLASSES: Tuple[str, ...] = (
    "hand clapping", "right hand wave", "left hand wave", "right arm cw", "right arm ccw",
    "left arm cw", "left arm ccw", "arm roll", "air drums", "air guitar", "other gestures",
)
N_CLASSES = len(CLASSES)
SENSOR_SIZE = (128, 128, 2)  # tonic convention: (W, H, P)
#: tonic's DVS Gesture event dtype (x, y, p, t) with t in µs.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
SPLIT_STREAM = {"train": 0, "test": 1}

# blob slots of the scene
_HEAD, _TORSO = 0, 1
_R_ARM = (2, 3, 4)  # two arm blobs + hand (last)
_L_ARM = (5, 6, 7)
_DISTRACTOR = 8
_K = 9


@dataclass(frozen=True)
class SensorConfig:
    """Parameters of the simulated scene and sensor (defaults: the bundled stand-in)."""

    duration_us: int = 1_000_000      #: length of one sample (µs)
    n_steps: int = 60                 #: simulation steps per sample
    threshold: float = 0.18           #: nominal log-intensity contrast threshold
    threshold_mismatch: float = 0.25  #: relative std of the per-pixel thresholds
    refractory_us: int = 4_000        #: minimum spacing of two events of one pixel (µs)
    jitter_us: float = 2_000.0        #: std of the Gaussian timing jitter (µs)
    noise_hz: Tuple[float, float] = (0.02, 0.25)  #: per-pixel background rate range (Hz)
    distractor_prob: float = 0.3      #: probability of a distractor blob
    offset_px: float = 10.0           #: max shift of the person's centre (pixels)
    scale_range: Tuple[float, float] = (0.75, 1.25)
    freq_hz: Tuple[float, float] = (0.7, 1.6)
    hand_contrast: Tuple[float, float] = (0.5, 1.6)
    sloppiness: float = 0.15          #: amplitude of random extra hand motion (relative)
    hand_sigma: float = 9.0           #: hand blob size (std, pixels at scale 1)
    arm_sigma: float = 6.0            #: upper/lower arm blob size (std, pixels at scale 1)


DEFAULT_CONFIG = SensorConfig()


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_STREAM[split], int(index)])


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, n_terms: int = 3) -> np.ndarray:
    """A smooth random signal in [-1, 1]-ish: a sum of random low-frequency sinusoids. t in s."""
    f = rng.uniform(0.3, 2.5, n_terms)
    ph = rng.uniform(0, 2 * np.pi, n_terms)
    a = rng.uniform(0.2, 1.0, n_terms)
    a = a / a.sum()
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None, :] + ph[:, None])).sum(0)


def _hand_paths(label: int, rng: np.random.Generator, t: np.ndarray, s: float, cfg: SensorConfig
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Right and left hand positions relative to the body centre, each (n_steps, 2) as (x, y).

    Image coordinates: x to the right, y downwards; "right arm" is on the image's right.
    """
    f = rng.uniform(*cfg.freq_hz)
    phi = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
    n = t.size
    rest_r = np.array([22.0, 16.0]) * s
    rest_l = np.array([-22.0, 16.0]) * s
    r = np.tile(rest_r, (n, 1))
    l = np.tile(rest_l, (n, 1))
    amp = rng.uniform(0.7, 1.3)
    if label == 0:  # clapping: hands meet in front of the chest
        y0 = rng.uniform(-4, 6) * s
        gap = (4 + 14 * amp * (1 + np.cos(phi)) / 2) * s
        r = np.stack([gap, np.full(n, y0)], 1)
        l = np.stack([-gap, np.full(n, y0)], 1)
    elif label in (1, 2):  # hand wave: forearm swings around the elbow
        elbow = np.array([24.0, -2.0]) * s
        theta = np.deg2rad(40 * amp) * np.sin(phi)
        fore = 22 * s
        hand = np.stack([elbow[0] + fore * np.sin(theta), elbow[1] - fore * np.cos(theta)], 1)
        if label == 1:
            r = hand
        else:
            l = hand * np.array([-1.0, 1.0])
    elif label in (3, 4, 5, 6):  # whole-arm circles
        centre = np.array([30.0, -8.0]) * s
        rad = 18 * amp * s
        sign = 1.0 if label in (3, 5) else -1.0  # cw on screen (y down) = increasing angle
        hand = centre + rad * np.stack([np.cos(phi), sign * np.sin(phi)], 1)
        if label in (3, 4):
            r = hand
        else:  # same sense on screen, on the left side
            l = hand * np.array([-1.0, 1.0]) + np.array([0.0, 0.0])
            l[:, 0] = -centre[0] + rad * np.cos(phi)
    elif label == 7:  # arm roll: hands circle each other in front of the body
        centre = np.array([0.0, rng.uniform(0, 8)]) * s
        rad = 10 * amp * s
        sense = rng.choice([-1.0, 1.0])
        r = centre + np.array([6.0 * s, 0]) + rad * np.stack([np.cos(phi), sense * np.sin(phi)], 1)
        l = centre - np.array([6.0 * s, 0]) + rad * np.stack([np.cos(phi + np.pi), sense * np.sin(phi + np.pi)], 1)
    elif label == 8:  # air drums: hands hit down alternately
        hit = np.abs(np.sin(phi / 2))
        hit2 = np.abs(np.cos(phi / 2))
        r = np.stack([np.full(n, 14.0 * s), (2 + 16 * amp * hit) * s], 1)
        l = np.stack([np.full(n, -14.0 * s), (2 + 16 * amp * hit2) * s], 1)
    elif label == 9:  # air guitar: right hand strums fast, left hand slides on the neck
        phi2 = phi * 1.6
        r = np.stack([np.full(n, 8.0 * s) + 2 * s * np.sin(phi2 / 2), (10 + 8 * amp * np.sin(phi2)) * s], 1)
        l = np.stack([(-26 + 4 * np.sin(phi / 3)) * s, np.full(n, -4.0 * s)], 1)
    else:  # other gestures: random smooth motion of both hands
        for hand, rest in ((0, rest_r), (1, rest_l)):
            path = np.stack([_smooth_noise(rng, t), _smooth_noise(rng, t)], 1) * 16 * s
            path = path + rest * rng.uniform(0.3, 1.0) + np.array([0, -10 * s])
            if hand == 0:
                r = path
            else:
                l = path
    # sloppy execution: both hands wander a little, the idle hand fidgets
    for arr in (r, l):
        wob = np.stack([_smooth_noise(rng, t), _smooth_noise(rng, t)], 1)
        arr += wob * cfg.sloppiness * 10 * s
    return r, l


def _scene(label: int, rng: np.random.Generator, cfg: SensorConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blob centres (n_steps+1, K, 2), sigmas (K,), amplitudes (K,), background level."""
    n = cfg.n_steps + 1
    t = np.linspace(0.0, cfg.duration_us * 1e-6, n)
    s = rng.uniform(*cfg.scale_range)
    c = np.array([64.0, 66.0]) + rng.uniform(-cfg.offset_px, cfg.offset_px, 2)
    sway = np.stack([_smooth_noise(rng, t), _smooth_noise(rng, t)], 1) * 3 * s
    body = c + sway
    r, l = _hand_paths(label, rng, t, s, cfg)
    centres = np.zeros((n, _K, 2))
    centres[:, _HEAD] = body + np.array([0, -30 * s])
    centres[:, _TORSO] = body + np.array([0, 2 * s])
    sh_r = body + np.array([16 * s, -18 * s])
    sh_l = body + np.array([-16 * s, -18 * s])
    for (sh, hand, slots) in ((sh_r, body + r, _R_ARM), (sh_l, body + l, _L_ARM)):
        for j, frac in enumerate((0.35, 0.7, 1.0)):
            centres[:, slots[j]] = sh + frac * (hand - sh)
    sig = np.zeros(_K)
    amp = np.zeros(_K)
    sig[_HEAD], sig[_TORSO] = 7 * s, 13 * s
    amp[_HEAD], amp[_TORSO] = rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6)
    arm_amp = rng.uniform(0.2, 0.5)
    hand_amp = rng.uniform(*cfg.hand_contrast)
    for slots in (_R_ARM, _L_ARM):
        sig[slots[0]], sig[slots[1]], sig[slots[2]] = cfg.arm_sigma * s, 0.9 * cfg.arm_sigma * s, cfg.hand_sigma * s
        amp[slots[0]], amp[slots[1]], amp[slots[2]] = arm_amp, arm_amp, hand_amp
    if rng.random() < cfg.distractor_prob:
        p0 = rng.uniform(0, 128, 2)
        v = rng.normal(0, 60, 2)  # px/s
        wig = np.stack([_smooth_noise(rng, t), _smooth_noise(rng, t)], 1) * rng.uniform(0, 15)
        centres[:, _DISTRACTOR] = p0 + v * t[:, None] + wig
        sig[_DISTRACTOR] = rng.uniform(2.5, 8)
        amp[_DISTRACTOR] = rng.uniform(0.3, 1.2) * rng.choice([-0.6, 1.0])
    else:
        centres[:, _DISTRACTOR] = -100.0
        sig[_DISTRACTOR] = 1.0
    bg = rng.uniform(0.3, 1.0)
    return centres, sig, amp, np.asarray(bg)


def _render(centres: np.ndarray, sig: np.ndarray, amp: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Intensity images (B, 128, 128) from blob centres (B, K, 2), sigmas (B, K), amplitudes (B, K)."""
    grid = np.arange(128, dtype=np.float32)
    inv = (1.0 / (2.0 * sig ** 2)).astype(np.float32)[:, :, None]
    gx = np.exp(-((grid[None, None, :] - centres[:, :, 0:1].astype(np.float32)) ** 2) * inv)  # (B,K,W)
    gy = np.exp(-((grid[None, None, :] - centres[:, :, 1:2].astype(np.float32)) ** 2) * inv)  # (B,K,H)
    gy = gy * amp.astype(np.float32)[:, :, None]
    img = np.matmul(gy.transpose(0, 2, 1), gx)  # (B,H,W)
    img += 1.0
    img *= bg.astype(np.float32)[:, None, None]
    return np.maximum(img, 0.05)


def generate_events(
    labels: Sequence[int], seed: int, split: str, start: int = 0, config: SensorConfig = DEFAULT_CONFIG
) -> List[np.ndarray]:
    """Simulate the sensor for samples ``start .. start+len(labels)-1`` of ``split`` (one batch).

    Returns one structured event array (tonic DVS Gesture dtype, sorted by ``t``) per sample.
    """
    cfg = config
    B = len(labels)
    rngs = [_sample_rng(seed, split, start + i) for i in range(B)]
    scenes = [_scene(int(lab), rng, cfg) for lab, rng in zip(labels, rngs)]
    centres = np.stack([sc[0] for sc in scenes], 1)  # (n+1, B, K, 2)
    sig = np.stack([sc[1] for sc in scenes])
    amp = np.stack([sc[2] for sc in scenes])
    bg = np.stack([sc[3] for sc in scenes])
    c_on = np.stack([np.clip(rng.normal(1.0, cfg.threshold_mismatch, (128, 128)), 0.4, None) for rng in rngs])
    c_off = np.stack([np.clip(rng.normal(1.0, cfg.threshold_mismatch, (128, 128)), 0.4, None) for rng in rngs])
    c_on = (c_on * cfg.threshold).astype(np.float32)
    c_off = (c_off * cfg.threshold).astype(np.float32)
    dt = cfg.duration_us / cfg.n_steps
    n_max = max(1, int(dt // cfg.refractory_us))
    l_ref = np.log(_render(centres[0], sig, amp, bg))
    parts: List[List[Tuple[np.ndarray, ...]]] = [[] for _ in range(B)]
    for step in range(1, cfg.n_steps + 1):
        logi = np.log(_render(centres[step], sig, amp, bg))
        diff = logi - l_ref
        for pol, cmap in ((True, c_on), (False, c_off)):
            d = diff if pol else -diff
            cnt = np.floor(d / cmap)
            idx = np.nonzero(cnt >= 1)
            if idx[0].size == 0:
                continue
            k = np.minimum(cnt[idx], n_max).astype(np.int64)
            cpix = cmap[idx]
            # l_ref moves by k thresholds (sign of the change)
            l_ref[idx] += (k * cpix) if pol else -(k * cpix)
            # crossing times by linear interpolation of the log-intensity within the step
            rep = np.repeat(np.arange(idx[0].size), k)
            j = np.arange(rep.size) - np.repeat(np.cumsum(k) - k, k)  # 0..k-1 within each pixel
            frac = (j + 1) * cpix[rep] / d[idx][rep]
            frac = np.maximum(frac, (j + 1) * cfg.refractory_us / dt * 0.999)  # refractory spacing
            tt = (step - 1 + np.minimum(frac, 1.0)) * dt
            bb, yy, xx = idx[0][rep], idx[1][rep], idx[2][rep]
            order = np.argsort(bb, kind="stable")
            bb, yy, xx, tt = bb[order], yy[order], xx[order], tt[order]
            bounds = np.searchsorted(bb, np.arange(B + 1))
            for b in range(B):
                lo, hi = bounds[b], bounds[b + 1]
                if hi > lo:
                    parts[b].append((xx[lo:hi], yy[lo:hi], np.full(hi - lo, pol), tt[lo:hi]))
    out: List[np.ndarray] = []
    for b, rng in enumerate(rngs):
        xs = [p[0] for p in parts[b]]
        ys = [p[1] for p in parts[b]]
        ps = [p[2] for p in parts[b]]
        ts = [p[3] for p in parts[b]]
        x = np.concatenate(xs) if xs else np.zeros(0, np.int64)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        p = np.concatenate(ps) if ps else np.zeros(0, bool)
        t = np.concatenate(ts) if ts else np.zeros(0)
        t = t + rng.normal(0.0, cfg.jitter_us, t.size)
        # background activity
        rate = rng.uniform(*cfg.noise_hz)
        n_noise = rng.poisson(rate * 128 * 128 * cfg.duration_us * 1e-6)
        x = np.concatenate([x, rng.integers(0, 128, n_noise)])
        y = np.concatenate([y, rng.integers(0, 128, n_noise)])
        p = np.concatenate([p, rng.random(n_noise) < 0.5])
        t = np.concatenate([t, rng.uniform(0, cfg.duration_us, n_noise)])
        t = np.clip(np.rint(t), 0, cfg.duration_us - 1).astype(np.int64)
        ev = np.empty(t.size, dtype=EVENT_DTYPE)
        ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
        order = np.lexsort((ev["x"], ev["y"], ev["t"]))  # by t, ties by (y, x): deterministic
        ev = ev[order]
        out.append(ev)
    return out


def sample_labels(split: str, n: int) -> np.ndarray:
    """Labels of the first ``n`` samples of a split: ``i % 11`` (int64)."""
    if split not in SPLIT_STREAM:
        raise ValueError(f"split must be one of {sorted(SPLIT_STREAM)}, got {split!r}")
    return (np.arange(n) % N_CLASSES).astype(np.int64)


def generate_split_events(split: str, seed: int, n: int, batch: int = 64,
                          config: SensorConfig = DEFAULT_CONFIG, progress: bool = False
                          ) -> Tuple[List[np.ndarray], np.ndarray]:
    """All event arrays of the first ``n`` samples of ``split`` and their labels."""
    labels = sample_labels(split, n)
    events: List[np.ndarray] = []
    starts = range(0, n, batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"stand-in {split}", unit="batch")
    for s0 in starts:
        events.extend(generate_events(labels[s0:s0 + batch], seed, split, s0, config))
    return events, labels


def config_dict(config: SensorConfig = DEFAULT_CONFIG) -> Dict[str, object]:
    """The sensor configuration as a plain dict (for cache keys and model cards)."""
    return asdict(config)
