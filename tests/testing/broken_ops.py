"""Deliberately broken ops, each with the bug a fixed-input gradient check tends to miss.

Every class is a correct reference op with one mistake planted in it; tests/testing/ checks that
minires.testing finds each mistake and shrinks it to a small case. ``fixed`` builds the same op
without the mistake, as a control: the checks must pass it.
"""
import numpy as np

from minires.functional.activation import ReLU
from minires.functional.conv import Conv2d, im2col, out_size
from minires.functional.layout import channels_first_2d, from_channels_first_2d
from minires.functional.linear import Linear
from minires.functional.norm import BatchNorm


class ConvTransposedDx(Conv2d):
    """dx as a transposed convolution: dilate dy by the stride, pad it, correlate with the flipped
    kernel. Where no window reaches the last r = (H + 2p - k) % s rows (odd sizes with stride 2),
    the r missing rows belong at the bottom; ``wrong_side`` pads them at the top instead."""

    wrong_side = True

    def backward(self, gy):
        x, w, s, p = self.x, self.w, self.stride, self.padding
        N, C, H, W = x.shape
        C_out, _, kh, kw = w.shape
        OH, OW = gy.shape[2:]
        rh, rw = (H + 2 * p - kh) % s, (W + 2 * p - kw) % s
        dilated = np.zeros((N, C_out, (OH - 1) * s + 1, (OW - 1) * s + 1), gy.dtype)
        dilated[:, :, ::s, ::s] = gy
        # full correlation pads by k - 1; the r rows no window reached go below (or, wrongly, above)
        top, left = (kh - 1 + rh, kw - 1 + rw) if self.wrong_side else (kh - 1, kw - 1)
        bottom, right = (kh - 1, kw - 1) if self.wrong_side else (kh - 1 + rh, kw - 1 + rw)
        padded = np.pad(dilated, ((0, 0), (0, 0), (top, bottom), (left, right)))
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)          # (C, C_out, kh, kw)
        full_h, full_w = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
        cols = im2col(padded, kh, kw, 1, 0)
        dxpad = from_channels_first_2d(flipped.reshape(C, -1) @ cols, (N, C, full_h, full_w))
        gx = np.ascontiguousarray(dxpad[:, :, p:p + H, p:p + W])
        gw = (channels_first_2d(gy) @ im2col(x, kh, kw, s, p).T).reshape(w.shape)
        return (gx, gw, channels_first_2d(gy).sum(axis=1)) if self.has_bias else (gx, gw)


class BatchNormPerImage(BatchNorm):
    """dx's two correction terms averaged over each image's H*W values instead of the channel's
    N*H*W: right when the batch holds one image."""

    def backward(self, gy):
        dx_right, dgamma, dbeta = super().backward(gy)
        if gy.ndim != 4:
            return dx_right, dgamma, dbeta
        xhat = from_channels_first_2d(self.xhat, gy.shape)
        scale = (self.gamma * self.invstd)[None, :, None, None]
        dx = scale * (gy - gy.mean(axis=(2, 3), keepdims=True)
                      - xhat * (gy * xhat).mean(axis=(2, 3), keepdims=True))
        return dx, dgamma, dbeta


class LinearSwappedTranspose(Linear):
    """dw = x^T @ dy (in, out) instead of dy^T @ x (out, in): right only when w is square, and even
    then wrong unless w is symmetric."""

    def backward(self, gy):
        gx, gw, *gb = super().backward(gy)
        return (gx, self.x.T @ gy, *gb)


class ReLUFloat64Gradient(ReLU):
    """dx = dy * where(y > 0, 1.0, 0.0): np.where with Python floats makes a float64 mask, so a
    float32 input gets a float64 gradient. Every float64 check passes."""

    def backward(self, gy):
        return gy * np.where(self.y > 0, 1.0, 0.0)


class ReLUContiguousOnly(ReLU):
    """dx written through gx.reshape(-1): for a channel-major gy, zeros_like keeps that layout,
    reshape(-1) of it is a copy, and the write is lost. Right for C-contiguous arrays only."""

    def backward(self, gy):
        gx = np.zeros_like(gy)
        gx.reshape(-1)[...] = (gy * (self.y > 0)).reshape(-1)
        return gx


class LeakyReLUWrongSide(ReLU):
    """Forward and backward agree with each other (a gradient check passes) but put the slope on
    the positive side: y = 0.1 x for x > 0, x otherwise. Only an oracle sees it."""

    def forward(self, x):
        self.x = x
        return np.where(x > 0, 0.1 * x, x)

    def backward(self, gy):
        return gy * np.where(self.x > 0, 0.1, 1.0).astype(gy.dtype)


class BatchNormOnePassVariance(BatchNorm):
    """var = E[x^2] - E[x]^2: exact in float64 for these sizes, but in float32 the two terms cancel
    when the channel's mean is large against its spread."""

    def forward(self, x, gamma, beta):
        y = super().forward(x, gamma, beta)
        m = channels_first_2d(x)
        var = (m * m).mean(axis=1) - m.mean(axis=1) ** 2
        self.invstd = 1 / np.sqrt(np.maximum(var, 0) + self.eps)
        self.xhat = (m - m.mean(axis=1)[:, None]) * self.invstd[:, None]
        y = gamma[:, None] * self.xhat + beta[:, None]
        return from_channels_first_2d(y, x.shape)


class ConvFailsOnOneByOne(Conv2d):
    """Raises for 1x1 images (it indexes the second row to 'look at' the input)."""

    def forward(self, x, w, b=None):
        x[:, :, 1]  # IndexError when H == 1
        return super().forward(x, w, b)


def fixed(cls):
    """The same op without its planted mistake."""
    fixes = {ConvTransposedDx: {"wrong_side": False}}
    if cls in fixes:
        return type(cls.__name__ + "Fixed", (cls,), fixes[cls])
    return cls.__mro__[1]  # the reference op it was derived from


__all__ = ["ConvTransposedDx", "BatchNormPerImage", "LinearSwappedTranspose",
           "ReLUFloat64Gradient", "ReLUContiguousOnly", "LeakyReLUWrongSide",
           "BatchNormOnePassVariance", "ConvFailsOnOneByOne", "fixed", "out_size"]
