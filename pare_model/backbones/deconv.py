"""Transposed-convolution upsampling for coarse backbones (PARE with ResNet-50: 7 x 7 -> 56 x 56).

In the original this path belongs to the PARE head, one copy per branch
(``head.keypoint_deconv_layers.*`` and ``head.smpl_deconv_layers.*``). Each stage is
[ConvTranspose2d (stride 2, no bias), BN, ReLU], so a stage ``k`` holds Sequential indices
``3k`` (transposed conv), ``3k + 1`` (BN) and ``3k + 2`` (ReLU), as the original's keys.
Weights keep PyTorch's default initialisation, as in the original head; BN starts at 1 / 0.
"""

from __future__ import annotations

from torch import nn

from pare_model.backbones.blocks import BN_MOMENTUM

# kernel -> (padding, output_padding) that make a stride-2 transposed conv exactly double the size.
_DOUBLING_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def make_deconv_layers(in_channels: int, num_layers: int = 3, num_filters: int = 256, kernel: int = 4) -> nn.Sequential:
    """``num_layers`` x [ConvTranspose2d(kernel, stride 2), BN, ReLU]: (B, C, h, w) -> (B, F, 2^n h, 2^n w).

    Args:
        in_channels: C, channels of the backbone map (2048 for ResNet-50).
        num_layers: n, number of doublings (3 takes stride 32 to stride 4).
        num_filters: F, channels of every stage's output.
        kernel: 4 (PARE's default), 3 or 2; padding is chosen so each stage doubles exactly.
    """
    if kernel not in _DOUBLING_PADDING:
        raise ValueError(f"deconv kernel must be one of {sorted(_DOUBLING_PADDING)}, got {kernel}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    padding, output_padding = _DOUBLING_PADDING[kernel]
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [
            nn.ConvTranspose2d(
                in_channels,
                num_filters,
                kernel_size=kernel,
                stride=2,
                padding=padding,
                output_padding=output_padding,
                bias=False,
            ),
            nn.BatchNorm2d(num_filters, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        in_channels = num_filters
    return nn.Sequential(*layers)
