"""What makes minires fast, and why: the fast twins of the reference ops, one technique per file.

``minires/functional/`` holds the reference ops, each the formulas of its docstring. This package
computes the same functions the way that runs fast, and is what ``F.conv2d``, ``F.batch_norm`` and
``F.relu`` run by default (``MINIRES_OPS=reference`` or ``with minires.reference_ops():`` runs the
reference; ``minires/switch.py``). Each fast op is a subclass of its reference ``Function``: same
arguments, same saved state where it matters, the same function up to float rounding
(``tests/fast/test_fast_equals_reference.py`` checks every branch in float64).

    config.py         the knobs (chunk sizes, thresholds, threads) and ``using``, to turn them
    threads.py        map_chunks: chunks of work on a pool of threads, each with a one-thread BLAS
    memory.py         reused column buffers (workspaces); tune_allocator: glibc keeps freed memory
    row_blocks.py     blocks of rows of an activation (block_bytes), map_rows
    chunked_conv.py   ChunkedConv2d: the dispatcher, the first of its BRANCHES that applies
    empty.py          (branch) nothing to multiply (N, C_in or C_out is 0): y = b, no GEMM
    winograd.py       (branch) Winograd F(2x2, 3x3) for stride-1 3x3 convolutions; off by default
    shifted_gemm.py   (branch) stride-1 "same" convolutions as kh*kw GEMMs on shifted windows
    pointwise.py      (branch) 1x1 stride-1 convolutions: the activation is the column matrix
    flipped_dx.py     (branch) stride 1: dx as a convolution with the flipped kernel, no col2im
    columns.py        (branch) im2col columns over chunks of images, padded width for stride 1
    nonfinite.py      NaN and inf in the entries the reference puts them: where a branch differs
    blas.py           GEMM that accumulates (C += A @ B) and GEMMs over windows, from NumPy's BLAS
    blocked_norm.py   BlockedBatchNorm: blocks of channels, pairwise sums
    blocked_relu.py   BlockedReLU: blocks of rows

The knobs, for one block of code (``config.py`` lists them; unknown names and bad values are
refused):

    with minires.fast.using(shifted_gemm_max_channels=0, winograd_min_channels=64, num_threads=1):
        ...

Why each of them pays:

- Column layout (shared with the reference). Activations are stored channel-major, (C, N, H, W)
  in memory behind an NCHW shape (``functional/layout.py``), so im2col builds columns as
  (C*kh*kw, N*OH*OW) with one contiguous copy per kernel offset, and the convolution is one GEMM
  whose output is already the next layer's channel-major activation: no transposed copy anywhere.
- Chunks of images, in cache, on all cores (``columns.py``, ``threads.py``). NumPy runs a copy
  on one core and BLAS runs a GEMM on all of them; over a whole batch the two take turns and each
  pass streams kh*kw times an activation through main memory. A chunk of a few images (columns of
  at most 4 MiB) is copied and multiplied back to back on one thread, so the GEMM reads its columns
  from cache, and the chunks run side by side on the threads, each with a one-thread BLAS (NumPy
  releases the GIL in both). The chunking depends only on the sizes, so the numbers are
  bit-identical on any thread count. On the GPU one chunk is the whole batch.
- Shifted GEMMs for stride-1 "same" convolutions of up to 128 channels (``shifted_gemm.py``;
  every 3x3 convolution of a CIFAR ResNet but the stride-2 ones). A kernel offset (i, j) only
  shifts where the input is read: on a layout whose padding rows and columns are shared between
  neighbours, that shift is i*Wp + j numbers, so y = sum_{i,j} W[:, :, i, j] @ X[:, i*Wp + j:]
  (the first L columns of each window), kh*kw GEMMs that read the input where it lies and add
  into y in BLAS itself (beta = 1, ``blas.py``: NumPy's matmul cannot accumulate, and matmul
  then ``+=`` made a ResNet-20 step about 1.2x slower). No columns are written at all; the
  weight gradient is kh*kw GEMMs over the same windows, and dx the same sum with the flipped
  kernel. Where NumPy's BLAS cannot be called that way, and above 128 channels (where the extra
  outputs computed on the shared padding cost more multiplications than the copies save), the
  padded-width columns below do the work.
- Padded-width columns for stride 1 (``columns.im2col_wide``). im2col's copy is bound by the
  number of runs it copies (N*OH runs of OW numbers per row). Computing the output on the padded
  width makes each row of the columns one run per image, 3-5x faster to copy; the few extra
  outputs per row are computed and dropped.
- The input gradient of a stride-1 convolution without col2im (``flipped_dx.py``): it is a
  convolution of dy with the flipped kernel, another contiguous gather and GEMM instead of a
  scatter-add.
- Not on by default: Winograd's minimal filtering F(2x2, 3x3) (``winograd.py``, a branch of
  ``chunked_conv`` behind the ``winograd_min_channels`` knob): 16 multiplications per 2x2
  output tile instead of 36, as 16 GEMMs over transformed tiles. Its transforms are extra memory
  passes, and ``python -m benchmarks winograd`` found it slower than the default at every width.
- 1x1 stride-1 convolutions (the bottleneck's, ``pointwise.py``) skip im2col: the channel-major
  activation already is the column matrix.
- Small reused workspaces hold the columns, one per thread (``memory.py``); the backward rebuilds
  them instead of keeping every layer's columns alive.
- Batch norm and ReLU in blocks of channel rows over the threads (``blocked_norm.py``,
  ``blocked_relu.py``, ``row_blocks.py``): a few passes per block while it is in cache,
  temporaries in the output's buffer; eval-mode batch norm is one multiply and one add.
- Freed memory is reused (``memory.tune_allocator``, glibc only; called where a run starts,
  ``python -m minires`` and ``python -m benchmarks``, never on import): without it every fresh
  activation of a step page-faults once per 4 KiB.

Threads: as many as the process has cores, at most 8, or ``MINIRES_NUM_THREADS`` (a positive
whole number; any other value is said in one line on stderr and the default used), or the
``num_threads`` knob (``using(num_threads=n)`` for a block, ``set_num_threads(n)`` for good).
"""
from .. import switch
from ..functional.activation import ReLU
from ..functional.conv import Conv2d
from ..functional.norm import BatchNorm
from .blocked_norm import BlockedBatchNorm
from .blocked_relu import BlockedReLU
from .chunked_conv import ChunkedConv2d
from .config import knobs, using
from .memory import release_workspace, tune_allocator, workspace
from .threads import map_chunks, num_threads, set_num_threads

# The one table of fast twins: F.conv2d, F.batch_norm and F.relu look their class up here.
switch.FAST.update({Conv2d: ChunkedConv2d, BatchNorm: BlockedBatchNorm, ReLU: BlockedReLU})

__all__ = ["ChunkedConv2d", "BlockedBatchNorm", "BlockedReLU", "using", "knobs", "map_chunks",
           "num_threads", "set_num_threads", "workspace", "release_workspace", "tune_allocator"]
