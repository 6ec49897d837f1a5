"""Our own CAM++ speaker encoder (the architecture of 3D-Speaker's CAMPPlus), used for the tiny preset.

Real checkpoints ship ``campplus.onnx`` and no PyTorch weights, so this definition exists to give the tiny preset the
same graph structure (upstream_ref/campplus/README.md, "Layout"): a 2-D convolutional front end (FCM) over the
80 mel bins, a strided TDNN layer, densely connected TDNN blocks whose layers use context-aware masking (CAM: a
local conv gated by a sigmoid of global + per-100-frame segment context), transit layers, mean+std statistics pooling
and a 1x1 dense layer with an affine-free BatchNorm. Input [B, T, 80] features, output [B, 192] embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CamPlusConfig:
    feat_dim: int = 80
    embedding_size: int = 192
    growth_rate: int = 32
    bn_size: int = 4
    init_channels: int = 128
    fcm_channels: int = 32
    block_layers: tuple[int, ...] = (12, 24, 16)
    block_dilations: tuple[int, ...] = (1, 2, 2)
    seg_len: int = 100


TINY = CamPlusConfig(growth_rate=8, bn_size=2, init_channels=32, fcm_channels=8, block_layers=(2, 2, 2))


def bn_relu(c: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(c), nn.ReLU())


class ResBlock2d(nn.Module):
    """Basic 2-D residual block; ``stride`` applies to the frequency axis only."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class FCM(nn.Module):
    """[B, 80, T] -> [B, C * 80/8, T]: 2-D convs halve the frequency axis three times."""

    def __init__(self, c: int, feat_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(ResBlock2d(c, c, 2), ResBlock2d(c, c, 1))
        self.layer2 = nn.Sequential(ResBlock2d(c, c, 2), ResBlock2d(c, c, 1))
        self.conv2 = nn.Conv2d(c, c, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.out_channels = c * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = self.layer2(self.layer1(y))
        y = F.relu(self.bn2(self.conv2(y)))  # [B, C, F/8, T]
        return y.reshape(y.shape[0], -1, y.shape[-1])


class CAMLayer(nn.Module):
    """Local conv gated by sigmoid(MLP(global mean + per-segment mean))."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, seg_len: int) -> None:
        super().__init__()
        self.local = nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation)
        self.linear1 = nn.Conv1d(cin, cin // 2, 1)
        self.linear2 = nn.Conv1d(cin // 2, cout, 1)
        self.seg_len = seg_len

    def seg_pool(self, x: torch.Tensor) -> torch.Tensor:
        # mean over each 100-frame segment (the last one partial), broadcast back to every frame
        seg = F.avg_pool1d(x, self.seg_len, self.seg_len, ceil_mode=True)  # [B, C, n]
        b, c, n = seg.shape
        seg = seg.unsqueeze(-1).expand(b, c, n, self.seg_len).reshape(b, c, n * self.seg_len)
        return seg[..., : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(-1, keepdim=True) + self.seg_pool(x)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.local(x) * gate


class DenseTDNNLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_channels: int, dilation: int, seg_len: int) -> None:
        super().__init__()
        self.pre = bn_relu(cin)
        self.linear = nn.Conv1d(cin, bn_channels, 1, bias=False)
        self.mid = bn_relu(bn_channels)
        self.cam = CAMLayer(bn_channels, growth, 3, dilation, seg_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam(self.mid(self.linear(self.pre(x))))


class DenseTDNNBlock(nn.Module):
    def __init__(self, layers: int, cin: int, growth: int, bn_channels: int, dilation: int, seg_len: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseTDNNLayer(cin + i * growth, growth, bn_channels, dilation, seg_len) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class CamPlus(nn.Module):
    """features [B, T, 80] (mean-subtracted fbank) -> embedding [B, 192]."""

    def __init__(self, cfg: CamPlusConfig = CamPlusConfig()) -> None:
        super().__init__()
        self.head = FCM(cfg.fcm_channels, cfg.feat_dim)
        c = cfg.init_channels
        self.tdnn = nn.Sequential(nn.Conv1d(self.head.out_channels, c, 5, stride=2, padding=2, bias=False),
                                  nn.BatchNorm1d(c), nn.ReLU())
        blocks: list[nn.Module] = []
        for i, (n, d) in enumerate(zip(cfg.block_layers, cfg.block_dilations)):
            blocks.append(DenseTDNNBlock(n, c, cfg.growth_rate, cfg.bn_size * cfg.growth_rate, d, cfg.seg_len))
            c += n * cfg.growth_rate
            if i + 1 < len(cfg.block_layers):  # transit layer halves the channels
                blocks.append(nn.Sequential(bn_relu(c), nn.Conv1d(c, c // 2, 1, bias=False)))
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        self.out = bn_relu(c)
        self.dense = nn.Conv1d(2 * c, cfg.embedding_size, 1, bias=False)
        self.dense_bn = nn.BatchNorm1d(cfg.embedding_size, affine=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.head(features.transpose(1, 2))  # [B, C*10, T]
        x = self.out(self.blocks(self.tdnn(x)))  # [B, C', T/2]
        stats = torch.cat([x.mean(-1), x.std(-1, unbiased=True)], dim=1)  # [B, 2C']
        return self.dense_bn(self.dense(stats.unsqueeze(-1))).squeeze(-1)


def randomize(model: CamPlus, generator: torch.Generator, batches: int = 6) -> CamPlus:
    """Seeded weights that behave like a trained network (the recipe of upstream_ref/campplus/README.md, step 2):
    He-normal convs, non-trivial BatchNorm affine and conv biases, then every BatchNorm's running statistics
    re-estimated (cumulative average, train mode) on seeded N(0,1) features so that BatchNorms really normalise.
    Without this the embedding hardly depends on the input."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=generator) * 0.05
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.affine:
                m.weight.data = 0.5 + torch.rand(m.num_features, generator=generator)
                m.bias.data = torch.randn(m.num_features, generator=generator) * 0.1
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
    # the statistics are accumulated in float64: in float32 they carry the CPU's convolution kernels (AVX2 and
    # AVX-512 sum in different orders), and a BatchNorm with a small variance turns that into embeddings that
    # differ by 4e-4 between machines; float64 rounded to float32 gives the same weights everywhere
    model.double().train()
    with torch.no_grad():
        for i in range(batches):
            frames = 60 + int(torch.randint(0, 240, (1,), generator=generator))
            model(torch.randn(8, frames, 80, generator=generator).double())
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = 0.1
    return model.float().eval()
