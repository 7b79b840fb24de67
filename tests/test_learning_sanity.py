"""Learning sanity: the network fits a handful of training samples, without and with the full augmentation.

If it cannot, something is wrong with the targets or the augmentation (the original PARE release
trained on targets no test ever fitted). The checks use truth computed here, independently of the
loader: the samples' own fits for the plain views, and for mirrored views the root rotation
mirrored as ``M R M`` (M = diag(-1, 1, 1)) and the ground-truth joints mirrored in x with left and
right swapped by name. A loader whose flip forgot the root, or mirrored the joints wrongly, trains
the network towards the wrong answer for half its images, and these errors stay high.

Sizes: 8 samples from the session's synthetic COCO-EFT-like shards, the quickstart's network (resnet_small,
16-channel branches) at 64 px, 500 steps plain and 1000 augmented: about 110 s of CPU on one core. At 64
px it fits as well as at the quickstart's 128 px (measured 2026-12-03: plain 1.2 degrees and 28 mm after 500
steps against 15 degrees and 98 mm at 128 px after 900), for a third of the cost.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

NUM_SAMPLES = 8
STEPS_PLAIN = int(os.environ.get("PARE_SANITY_STEPS_PLAIN", 500))
STEPS_AUGMENTED = int(os.environ.get("PARE_SANITY_STEPS_AUGMENTED", 1000))
IMAGE_SIZE, LABEL_SIZE = 64, 16
MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
BATCH_KEYS = ("segm_mask", "keypoints", "joints_3d", "pose", "betas", "has_smpl", "has_joints_3d", "has_segm")

# What "fitted" means, set from the spread over 5 seeds x 3 CPU kernel sets (bench/learning_spread.py,
# docs/benchmarks.md "Learning assertions"). Untrained, the network is at 89-173 degrees and 510-670 mm on these
# samples. A fixed limit in mm does not hold across machines even without augmentation: 14 of 15 plain fits end
# at 2-8 degrees and 25-66 mm, but seed 0 under the avx2 and native kernels keeps two of its eight views 60
# degrees off and ends at 22.6 degrees, 145 mm (2026-12-07). Both tests therefore assert a drop from the untrained
# error that every measured fit clears with a margin, and the augmented one also that mirrored views follow the
# mirrored root (ROOT_MARGIN).
PLAIN_DROP = 0.35
"""Without augmentation, the median MPJPE after STEPS_PLAIN is below this fraction of the untrained network's
(measured: 0.05-0.22)."""
PLAIN_ORIENTATION = 35.0
"""... and the median orientation error below this many degrees (measured: 1.8-22.6; untrained at least 89)."""
AUGMENTED_DROP = 0.45
"""With augmentation, each view's median MPJPE after STEPS_AUGMENTED is below this fraction of the untrained
network's (measured: 0.12-0.22)."""
ROOT_MARGIN = 15.0
"""Mirrored views whose right root ``M R M`` and unmirrored root ``R`` differ by 20-120 degrees: the prediction's
error against ``R`` minus its error against ``M R M``, averaged, must exceed this many degrees. Measured with
the loader's flip as it is: 31.6 to 57.9 degrees; with the root left unmirrored on a flip (the defect this test
exists to catch, ``bench/learning_spread.py --break-flip``): -33.3 to -5.8 degrees. Views of people seen from the
side (near 180 degrees apart) are left out: there the network's front/back confusions, not the flip, decide."""
SEPARATION = (20.0, 120.0)


def _config(procedural_dir):
    from pipelines.config.loader import load_config

    return load_config(
        None,
        [
            f"body_model.asset_dir={procedural_dir}",
            "model.backbone=resnet_small",
            f"model.image_size={IMAGE_SIZE}",
            "model.num_branch_filters=16",
            "model.num_features_smpl=16",
            "loader.num_workers=0",
            f"loader.label_size={LABEL_SIZE}",
        ],
    )


@pytest.fixture(autouse=True)
def one_thread():
    """Each test fits and measures on one torch thread, whatever the process's thread count.

    A reduction split over more threads sums in another order, and 1000 Adam steps turn that last-bit difference
    into another trajectory: the same test measured 152.7 mm inside the suite's test processes (one thread each)
    and passed run alone (two threads) on the same machine and commit (issue 39). With one thread its outcome
    depends only on the code and the CPU kernels torch picks (see bench/learning_spread.py).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def raw_samples(training_shards):
    import webdataset as wds

    urls = sorted(glob.glob(str(training_shards / "coco-eft" / "train" / "*.tar")))
    samples = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        samples.append(dict(sample))
        if len(samples) == NUM_SAMPLES:
            return samples
    raise AssertionError(f"the training shards hold fewer than {NUM_SAMPLES} samples")


def _stack(examples: list[dict]) -> dict:
    return {k: torch.as_tensor(np.stack([e[k] for e in examples])) for k in ("image", *BATCH_KEYS)}


def _views(raw: list[dict], config, flip: bool) -> dict:
    """The samples un-augmented, or only mirrored, through the loader's own decoding and warp."""
    from pipelines.data.samples import SampleTransform
    from preprocessing.augment.crop_geometry import IDENTITY, Draw

    transform = SampleTransform(config.loader, config.model.image_size, seed=0, train=False)
    transform.draw = lambda: Draw(flip=True) if flip else IDENTITY
    return _stack([transform(dict(s)) for s in raw])


def _truth(plain: dict, body_model, mirrored: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(root rotations (B, 3, 3), protocol joints (B, 14, 3)) from the samples' fits, mirrored here if asked."""
    from pare_model.geometry import axis_angle_to_matrix
    from pare_model.joint_sets import JOINT_SETS
    from pare_model.metrics import protocol_joints

    rotations = axis_angle_to_matrix(plain["pose"].reshape(-1, 24, 3).float())
    with torch.no_grad():
        joints = protocol_joints(body_model(rotations[:, :1], rotations[:, 1:], plain["betas"].float())["h36m_joints"])
    root = rotations[:, 0]
    if mirrored:
        root = MIRROR @ root @ MIRROR
        joints = joints[:, list(JOINT_SETS["lsp14"].flip_perm)] * torch.tensor([-1.0, 1.0, 1.0])
    return root, joints


@torch.no_grad()
def _predict(model, images: torch.Tensor) -> dict:
    """The model's outputs in eval mode."""
    from pare_model.image_input import to_model_input

    model.eval()
    pred = model(to_model_input(images))
    model.train()
    return pred


@torch.no_grad()
def _errors(model, images: torch.Tensor, truth: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(orientation error in degrees (B,), MPJPE in mm (B,)) of the model in eval mode."""
    from pare_model.metrics import mpjpe, orientation_error, protocol_joints

    pred = _predict(model, images)
    output = model.body_model(pred["pred_pose"][:, :1], pred["pred_pose"][:, 1:], pred["pred_shape"])
    root, joints = truth
    return (
        orientation_error(pred["pred_pose"][:, 0], root).numpy(),
        mpjpe(protocol_joints(output["h36m_joints"]), joints).numpy(),
    )


@torch.no_grad()
def mirrored_root_errors(model, mirrored_images: torch.Tensor, plain_root: torch.Tensor) -> dict[str, np.ndarray]:
    """Per mirrored view, in degrees: the predicted root's error against the mirrored root ``M R M`` (``right``)
    and against the unmirrored ``R`` (``wrong``, what a flip that forgot the root trains towards), and the angle
    between the two (``separation``: near 0 for a person facing the camera squarely, where the two agree)."""
    from pare_model.metrics import orientation_error

    right = MIRROR @ plain_root @ MIRROR
    predicted = _predict(model, mirrored_images)["pred_pose"][:, 0]
    return {
        "right": orientation_error(predicted, right).numpy(),
        "wrong": orientation_error(predicted, plain_root).numpy(),
        "separation": orientation_error(right, plain_root).numpy(),
    }


def fit(raw: list[dict], config, asset_dir, steps: int, augment: bool, seed: int = 0):
    """Adam at 1e-3 on the same samples for ``steps`` steps: the plain views, or a fresh augmented draw each step."""
    from pare_model.checkpoint import build_model_from_assets
    from pare_model.image_input import to_model_input
    from pare_model.losses import PareLoss
    from pipelines.data.samples import SampleTransform

    torch.manual_seed(seed)
    model = build_model_from_assets(config.model, asset_dir)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = PareLoss(config.loss)
    transform = SampleTransform(config.loader, config.model.image_size, seed=seed, train=True)
    plain = _views(raw, config, flip=False)
    for step in range(steps):
        batch = _stack([transform(dict(s)) for s in raw]) if augment else plain
        pred = model(to_model_input(batch["image"]))
        loss, _ = loss_fn(pred, {k: batch[k] for k in BATCH_KEYS}, step=step, epoch=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def _report(name: str, orient: np.ndarray, error: np.ndarray) -> str:
    return (
        f"{name}: orientation error median {np.median(orient):.1f} deg (max {orient.max():.1f}), "
        f"MPJPE median {np.median(error):.1f} mm"
    )


def root_margin(errors: dict[str, np.ndarray]) -> tuple[float, int]:
    """(mean of wrong - right error over the views whose roots differ by :data:`SEPARATION`, number of views)."""
    used = (errors["separation"] >= SEPARATION[0]) & (errors["separation"] <= SEPARATION[1])
    return float(np.mean(errors["wrong"][used] - errors["right"][used])) if used.any() else float("nan"), int(
        used.sum()
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fits_a_handful_of_samples_without_augmentation(raw_samples, procedural_dir, body_model):
    config = _config(procedural_dir)
    plain = _views(raw_samples, config, flip=False)
    truth = _truth(plain, body_model, mirrored=False)
    untrained = fit(raw_samples, config, procedural_dir, steps=0, augment=False)
    before = _errors(untrained, plain["image"], truth)
    model = fit(raw_samples, config, procedural_dir, STEPS_PLAIN, augment=False)
    after = _errors(model, plain["image"], truth)
    print(_report("untrained", *before))
    message = _report(f"plain views after {STEPS_PLAIN} steps", *after)
    print(message)
    limit = PLAIN_DROP * float(np.median(before[1]))
    assert np.median(after[1]) < limit, f"{message}; limit {limit:.1f} mm ({PLAIN_DROP} x untrained)"
    assert np.median(after[0]) < PLAIN_ORIENTATION, f"{message}; limit {PLAIN_ORIENTATION:g} deg"
    assert np.median(before[0]) > 2 * PLAIN_ORIENTATION  # the samples are not trivially near the start


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fits_a_handful_of_samples_with_full_augmentation(raw_samples, procedural_dir, body_model):
    """Flip, rotation, scale, colour, blur and synthetic occlusion all on; then the plain and mirrored views."""
    config = _config(procedural_dir)
    assert config.loader.augment.enabled and config.loader.augment.flip_prob > 0 and config.loader.occlusion.enabled
    plain = _views(raw_samples, config, flip=False)
    mirrored = _views(raw_samples, config, flip=True)
    truth, mirrored_truth = _truth(plain, body_model, mirrored=False), _truth(plain, body_model, mirrored=True)
    untrained = _errors(fit(raw_samples, config, procedural_dir, 0, augment=False), plain["image"], truth)
    model = fit(raw_samples, config, procedural_dir, STEPS_AUGMENTED, augment=True)
    limit = AUGMENTED_DROP * float(np.median(untrained[1]))
    print(_report("untrained", *untrained))
    views = (("plain views", plain["image"], truth), ("mirrored views", mirrored["image"], mirrored_truth))
    for name, images, target in views:
        orient, error = _errors(model, images, target)
        message = _report(name, orient, error)
        print(message)
        assert np.median(error) < limit, f"{message}; limit {limit:.1f} mm ({AUGMENTED_DROP} x untrained)"
    margin, count = root_margin(mirrored_root_errors(model, mirrored["image"], truth[0]))
    message = f"mirrored views: {margin:.1f} deg closer to the mirrored root than to the unmirrored one ({count} views)"
    print(message)
    assert count >= 2 and margin > ROOT_MARGIN, message
