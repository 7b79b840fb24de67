"""``3dpw``: 3DPW's sequence pickles and frames; short smooth motions seen by a slowly moving camera.

Writes ``sequenceFiles/{train,validation,test}/<sequence>.pkl`` (pickle protocol 2; load with
``pickle.load(f, encoding="latin1")``) and ``imageFiles/<sequence>/image_{i:05d}.jpg``.

Keys and shapes, as in the real files (A actors, N frames): ``sequence`` (str), ``genders``
(A x 'm'/'f'), ``betas`` (A x (10,)), ``betas_clothed`` (A x (10,), equal to ``betas``),
``poses`` (A x (N, 72) axis-angle, root in the WORLD frame), ``trans`` (A x (N, 3)),
``poses_60Hz`` (A x (2N - 1, 72)) and ``trans_60Hz`` (A x (2N - 1, 3)) sampling the same motion
twice as often (every other 60 Hz frame is a 30 Hz frame), ``jointPositions`` (A x (N, 72), the
24 SMPL joints in the world frame), ``poses2d`` (A x (N, 3, 18): OpenPose-18 x, y in image pixels
and a confidence 1 visible, 0.5 hidden, 0 outside the image), ``campose_valid`` (A x (N,) bool),
``cam_poses`` ((N, 4, 4) world to camera), ``cam_intrinsics`` ((3, 3)), ``img_frame_ids`` ((N,)).
Not written: ``v_template_clothed`` and ``texture_maps`` (scans of the real actors).

World frame: y up, metres. Each actor has the body model of their gender. ``--num`` counts
frames: they are split into at least four sequences (at most 48, then longer ones), cycling test,
train, validation, test. Sequences carry real 3DPW names in their real split
(:mod:`preprocessing.readers.pw3d_sequences`): within each split, names with a 3DPW-OCC prefix
(test ``flat_packBags_00``, ``downtown_stairs_00``, ...; train ``courtyard_backpack_00``, ...;
validation ``outdoors_parcours_00``, ``outdoors_crosscountry_00``, ...) alternate with names
outside it (``downtown_walking_00``, ``courtyard_arguing_00``, ``courtyard_drinking_00``, ...), so
that 3DPW-OCC spans all three splits, as in the real data. Every second sequence has two actors.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pare_model.errors import UserFacingError
from preprocessing.bodies import BodyModels, PosedBodies, pose_bodies
from preprocessing.keypoints import OPENPOSE18_TO_SPIN, spin_indices
from preprocessing.readers.pw3d_sequences import SPLIT_SEQUENCES, in_occlusion_subset
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, progress, sample_rng, write_jpeg
from preprocessing.synth.framing import extrinsics_matrix, intrinsics, look_at, random_lean, yaw_rotation
from preprocessing.synth.poses import (
    POSTURES,
    interpolate_keyframes,
    matrix_to_axis_angle,
    sample_betas,
    sample_body_poses,
)
from preprocessing.synth.scene import (
    Lighting,
    OccluderLayer,
    PersonView,
    depth_tolerance,
    keypoint_visibility,
    maybe_occluders,
    random_lighting,
    render_scene,
)
from preprocessing.synth.textures import random_texture

NAME = "3dpw"
SPLIT_CYCLE = ("test", "train", "validation", "test")


def _interleaved(names: tuple[str, ...]) -> tuple[str, ...]:
    """A split's real names, those with a 3DPW-OCC prefix alternating with the others (the rest at the end)."""
    occluded = [n for n in names if in_occlusion_subset(n)]
    other = [n for n in names if not in_occlusion_subset(n)]
    pairs = [name for pair in zip(occluded, other, strict=False) for name in pair]
    return tuple(pairs + occluded[len(other) :] + other[len(occluded) :])


NAMES = {split: _interleaved(names) for split, names in SPLIT_SEQUENCES.items()}
"""Per split, the real sequence names in the order the layout uses them."""
MAX_SEQUENCES = min(len(NAMES[split]) * len(SPLIT_CYCLE) // SPLIT_CYCLE.count(split) for split in NAMES)
"""Sequences before a split runs out of real names (48: the 12 validation names, one per cycle of four)."""
REAL_SIZE = (1920, 1080)
"""(height, width) of 3DPW's portrait frames."""
REAL_FOCAL, REAL_CENTER = 1961.9, (540.0, 960.0)
CONFIDENCE = np.array([0.0, 0.5, 1.0])
"""poses2d confidence by visibility 0 (outside), 1 (hidden), 2 (visible)."""
STANDING_PELVIS = 1.15
"""Height of the root translation that puts the rest-pose feet near the ground (y = 0)."""


@dataclass(frozen=True)
class SequencePlan:
    name: str
    split: str
    num_frames: int
    num_actors: int


def plan_sequences(num: int, length: int) -> list[SequencePlan]:
    """Split ``num`` frames into at least 4 sequences of about ``length`` frames (at most :data:`MAX_SEQUENCES`)."""
    count = min(max(4, math.ceil(num / length)), MAX_SEQUENCES)
    if num < 4:
        raise UserFacingError(f"the 3dpw layout needs --num >= 4 (one frame for each of 4 sequences), got {num}")
    plans: list[SequencePlan] = []
    for k in range(count):
        split = SPLIT_CYCLE[k % len(SPLIT_CYCLE)]
        name = NAMES[split][sum(p.split == split for p in plans)]
        frames = num // count + (1 if k < num % count else 0)
        plans.append(SequencePlan(name, split, frames, 1 + k % 2))
    return plans


def _actor_motion(
    rng: np.random.Generator, num_frames: int, offset: float, variation: float = 1.0
) -> tuple[np.ndarray, ...]:
    """(N, 24, 3) axis-angle poses and (N, 3) translations at 30 Hz, then the same at 60 Hz (2N - 1)."""
    num_keys = max(2, math.ceil(num_frames / 6))
    posture = POSTURES[rng.integers(len(POSTURES))]
    body = sample_body_poses(rng, num_keys, postures=[posture], variation=0.7 * variation)  # (K, 23, 3)
    yaws = rng.uniform(-np.pi, np.pi) + np.linspace(0.0, rng.uniform(-0.6, 0.6), num_keys)
    lean = random_lean(rng, max_tilt=0.08)
    start = np.array([offset, STANDING_PELVIS, rng.uniform(-0.3, 0.3)])
    step = np.array([rng.uniform(-0.4, 0.4), 0.0, rng.uniform(-0.4, 0.4)])
    trans = start + np.linspace(0.0, 1.0, num_keys)[:, None] * step
    motion = []
    for count in (num_frames, 2 * num_frames - 1):
        times = np.linspace(0.0, num_keys - 1, count)
        # The yaw is interpolated as an angle, so a turn through +-pi does not spin the other way.
        yaw = interpolate_keyframes(yaws[:, None], times)[:, 0]
        roots = np.stack([matrix_to_axis_angle(lean @ yaw_rotation(y)) for y in yaw])
        pose = np.concatenate([roots[:, None], interpolate_keyframes(body, times)], axis=1)
        motion += [pose, interpolate_keyframes(trans, times)]
    return tuple(motion)


def _camera_path(rng: np.random.Generator, target: np.ndarray, num_frames: int, num_actors: int) -> np.ndarray:
    """(N, 4, 4) world-to-camera matrices of a camera drifting slowly around ``target``."""
    distance = rng.uniform(3.2, 4.5) + 1.0 * (num_actors - 1)
    azimuth = rng.uniform(-np.pi, np.pi) + np.linspace(0.0, rng.uniform(-0.2, 0.2), num_frames)
    elevation = rng.uniform(-0.05, 0.25)
    distances = distance * np.linspace(1.0, rng.uniform(0.92, 1.08), num_frames)
    matrices = []
    for a, d in zip(azimuth, distances, strict=True):
        eye = target + d * np.array(
            [math.cos(elevation) * math.sin(a), math.sin(elevation), math.cos(elevation) * math.cos(a)]
        )
        matrices.append(extrinsics_matrix(*look_at(eye, target, np.array([0.0, 1.0, 0.0]))))
    return np.stack(matrices)


@dataclass(frozen=True)
class _Sequence:
    """Everything about a sequence that does not change from frame to frame, and the posed actors."""

    plan: SequencePlan
    genders: list[str]
    betas: np.ndarray  # (A, 10)
    motions: list[tuple[np.ndarray, ...]]  # per actor: poses, trans at 30 Hz, then at 60 Hz
    bodies: list[PosedBodies]  # per actor, (N, ...) in the world frame
    colors: list[np.ndarray]  # per actor (V, 3) albedo
    camera: np.ndarray  # (3, 3) intrinsics
    cam_poses: np.ndarray  # (N, 4, 4) world to camera
    background: np.ndarray
    lighting: Lighting
    occluders: OccluderLayer | None


def _setup_sequence(
    plan: SequencePlan, rng: np.random.Generator, models: BodyModels, options: SynthOptions
) -> _Sequence:
    """Draw the actors, their motion, the camera path and the scene of one sequence."""
    height, width = (round(side * options.pw3d_scale) for side in REAL_SIZE)
    camera = intrinsics(REAL_FOCAL * options.pw3d_scale, *(c * options.pw3d_scale for c in REAL_CENTER))
    genders = [("m", "f")[rng.integers(2)] for _ in range(plan.num_actors)]
    betas = sample_betas(rng, plan.num_actors)
    offsets = (np.arange(plan.num_actors) - (plan.num_actors - 1) / 2.0) * 1.0
    motions = [_actor_motion(rng, plan.num_frames, offset, options.pose_variation) for offset in offsets]
    target = np.mean([m[1][0] for m in motions], axis=0) - np.array([0.0, 0.3, 0.0])
    cam_poses = _camera_path(rng, target, plan.num_frames, plan.num_actors)
    colors = [random_vertex_colors(rng, models.part_map(), models.template()) for _ in genders]
    bodies = [
        pose_bodies(models.get(g), m[0], np.repeat(b[None], plan.num_frames, 0), m[1], options.batch_size)
        for g, m, b in zip(genders, motions, betas, strict=True)
    ]
    background = random_texture(rng, height, width)
    lighting = random_lighting(rng)
    first_screen = np.concatenate([perspective_to_screen(b.vertices[0], camera, cam_poses[0]) for b in bodies])
    occluders = maybe_occluders(rng, options.occluder_probability, height, width, first_screen)
    return _Sequence(plan, genders, betas, motions, bodies, colors, camera, cam_poses, background, lighting, occluders)


def _render_frame(sequence: _Sequence, f: int, models: BodyModels, rng: np.random.Generator):
    """Frame ``f``: its picture, and per actor the (18, 3) OpenPose keypoints (x, y, depth) and visibility."""
    op_index = spin_indices(OPENPOSE18_TO_SPIN)
    extrinsics = sequence.cam_poses[f]
    people, keypoints, tolerances = [], [], []
    for body, colors in zip(sequence.bodies, sequence.colors, strict=True):
        screen = perspective_to_screen(body.vertices[f], sequence.camera, extrinsics)
        camera_vertices = body.vertices[f] @ extrinsics[:3, :3].T + extrinsics[:3, 3]
        people.append(PersonView(screen, camera_vertices, colors))
        keypoints.append(perspective_to_screen(body.joints[f, op_index], sequence.camera, extrinsics))
        tolerances.append(depth_tolerance(body.joints[f, op_index], body.vertices[f]))
    scene = render_scene(
        people,
        models.faces(),
        models.face_parts(),
        sequence.background,
        sequence.lighting,
        sequence.occluders,
        0.03,
        rng,
    )
    visibility = [keypoint_visibility(k, t, scene) for k, t in zip(keypoints, tolerances, strict=True)]
    return scene, keypoints, visibility


def _annotation(sequence: _Sequence, poses2d: np.ndarray) -> dict:
    """The sequence pickle's contents (see the module docstring); ``poses2d`` is (A, N, 3, 18)."""
    num_frames = sequence.plan.num_frames
    return {
        "sequence": sequence.plan.name,
        "genders": sequence.genders,
        "betas": [b.copy() for b in sequence.betas],
        "betas_clothed": [b.copy() for b in sequence.betas],
        "poses": [m[0].reshape(num_frames, 72) for m in sequence.motions],
        "trans": [m[1] for m in sequence.motions],
        "poses_60Hz": [m[2].reshape(-1, 72) for m in sequence.motions],
        "trans_60Hz": [m[3] for m in sequence.motions],
        "jointPositions": [b.smpl_joints.reshape(num_frames, 72) for b in sequence.bodies],
        "poses2d": list(poses2d),
        "campose_valid": [np.ones(num_frames, bool) for _ in sequence.genders],
        "cam_poses": sequence.cam_poses,
        "cam_intrinsics": sequence.camera,
        "img_frame_ids": np.arange(num_frames),
    }


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` frames as 3DPW sequences (see the module docstring)."""
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    bar = progress(range(num), num, NAME)
    for k, plan in enumerate(plan_sequences(num, options.sequence_length)):
        rng = sample_rng(seed, NAME, k)
        sequence = _setup_sequence(plan, rng, models, options)
        poses2d = np.zeros((plan.num_actors, plan.num_frames, 3, 18))
        for f in range(plan.num_frames):
            scene, keypoints, visibility = _render_frame(sequence, f, models, rng)
            name = f"image_{f:05d}.jpg"
            write_jpeg(out / "imageFiles" / plan.name / name, scene.image, options.jpeg_quality)
            for a in range(plan.num_actors):
                poses2d[a, f] = np.concatenate([keypoints[a][:, :2], CONFIDENCE[visibility[a]][:, None]], axis=1).T
            if f in (0, plan.num_frames - 1):  # previews from many sequences rather than many frames of one
                result.keep_preview(
                    lambda n=f"{plan.name}/{name}", s=scene, p=keypoints, v=visibility: PreviewTile(
                        s.image, s.labels, np.concatenate(p)[:, :2], np.concatenate(v), n
                    ),
                    options.preview_count,
                )
            bar.update(1)
        path = out / "sequenceFiles" / plan.split / f"{plan.name}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(_annotation(sequence, poses2d), protocol=2))
        result.annotation_files.append(path)
    bar.close()
    return result
