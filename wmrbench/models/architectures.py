"""Architectures. Layer names follow the reference code (TRADES, the authors, RobustBench) so that released checkpoints load."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.models.registry import register_model


@register_model("smallcnn", "SmallCNN of TRADES for 28x28 MNIST (4 conv, 3 fc, dropout)", input_shape=(1, 28, 28))
class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, drop: float = 0.5) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 32, 3)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", nn.ReLU()),
            ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", nn.ReLU()),
            ("maxpool2", nn.MaxPool2d(2, 2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", nn.ReLU()),
            ("drop", nn.Dropout(drop)),
            ("fc2", nn.Linear(200, 200)), ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(200, num_classes)),
        ]))
        # TRADES' initialisation: Kaiming convs with zero bias; a zero fc3 starts at uniform p.
        for module in self.feature_extractor:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.classifier.fc3.weight, 0)
        nn.init.constant_(self.classifier.fc3.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.feature_extractor(x).flatten(1))


@register_model("digitsnet", "small CNN for 8x8 digits (2 conv, 2 fc)", input_shape=(1, 8, 8))
class DigitsNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 32, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 64, 3, padding=1)), ("relu2", nn.ReLU()),
            ("maxpool1", nn.MaxPool2d(2, 2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 128)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(128, num_classes)),
        ]))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.feature_extractor(x).flatten(1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stem, no max-pool), the layout of the TRADES / Madry code."""

    def __init__(self, num_blocks: list[int], num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * BasicBlock.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes * BasicBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)  # 4x4 for 32x32 inputs, as in the reference code
        return self.linear(out.flatten(1))


@register_model("resnet18", "ResNet-18 for 32x32 inputs (CIFAR style)")
def resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return ResNet([2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels)


# --- PreActResNet-18 (Tiny ImageNet in the paper) -------------------------------------------------


class PreActBlock(nn.Module):
    """Pre-activation BasicBlock (He et al. 2016): BN-ReLU before each conv; a projection
    shortcut, when the shape changes, takes the pre-activated input."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """PreActResNet with a 3x3 stem, a final BN-ReLU (``bn``) and adaptive average pooling.

    Layer names are those of Rice et al.'s robust-overfitting code and RobustBench's
    ``PreActResNet(PreActBlockV2, ..., bn_before_fc=True)``: conv1, layer1..4, bn, linear. The
    adaptive pooling takes any input size (4x4 pooling of 32x32 inputs, 8x8 of 64x64 ones).
    """

    def __init__(self, num_blocks: list[int], num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.bn = nn.BatchNorm2d(512 * PreActBlock.expansion)
        self.linear = nn.Linear(512 * PreActBlock.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes * PreActBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.flatten(1))


@register_model("preactresnet18", "PreActResNet-18 with adaptive pooling, any input size (Tiny ImageNet)", input_shape=(3, 64, 64))
def preactresnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return PreActResNet([2, 2, 2, 2], num_classes=num_classes, in_channels=in_channels)


# --- WideResNet-34-10 (the TRADES CIFAR-10 model) -------------------------------------------------


class WideBasicBlock(nn.Module):
    """TRADES' WideResNet block, names and forward kept exactly (bn1/relu1/conv1/bn2/relu2/conv2,
    and a 1x1 ``convShortcut`` on the pre-activated input when the width or stride changes)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.equal_in_out:
            out = self.relu1(self.bn1(x))
        else:
            x = self.relu1(self.bn1(x))  # the shortcut, too, sees the pre-activated input
            out = x
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return (x if self.convShortcut is None else self.convShortcut(x)) + out


class NetworkBlock(nn.Module):
    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate)
            for i in range(blocks)
        ])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """The WideResNet of the TRADES code (yaodongyu/TRADES, models/wideresnet.py).

    ``sub_block1`` is built but never used in forward, exactly as in TRADES: its weights are in
    TRADES' released checkpoints (RobustBench builds Zhang2019Theoretically with
    ``sub_block1=True`` for the same reason), so they load by ``state_dict``, strictly.
    """

    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10, in_channels: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n + 4; got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        self.sub_block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)  # unused, see above
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(channels[3], num_classes)
        # TRADES' initialisation: He-normal convs (fan-out), BN at identity, zero fc bias.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1)  # TRADES' avg_pool2d(8) for 32x32 inputs, any size here
        return self.fc(out.flatten(1))


@register_model("wrn34_10", "WideResNet-34-10 of TRADES (CIFAR-10), TRADES' layer names")
def wrn34_10(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return WideResNet(34, 10, num_classes=num_classes, in_channels=in_channels)


# --- a tiny model for smoke tests and quick CPU runs (not in the paper) ---------------------------


@register_model("tinycnn", "3-conv CNN with global pooling, any input size: smoke tests and quick CPU runs (not in the paper)")
class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(16)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)), ("bn2", nn.BatchNorm2d(32)), ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False)), ("bn3", nn.BatchNorm2d(64)), ("relu3", nn.ReLU()),
        ]))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.adaptive_avg_pool2d(self.feature_extractor(x), 1)
        return self.fc(out.flatten(1))
