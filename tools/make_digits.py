"""One-off: build ``digits.npz`` (the bundled data set) from the CSV that scikit-learn ships.

A maintainer's tool, not part of the shipped package: run it once, never at run time
(scikit-learn is not a dependency of minires). From the repository root:

    pip download scikit-learn --no-deps -d /tmp/skl
    (cd /tmp/skl && unzip -o -q scikit_learn-*.whl)
    python -m tools.make_digits /tmp/skl/sklearn/datasets/data/digits.csv.gz

``python -m`` from the root puts the checkout first on ``sys.path``, so the file written is this
checkout's ``minires/data/digits.npz`` (it is overwritten), not an installed copy's.

Each CSV row is one image: 64 pixel counts in 0..16 (row-major 8x8) and then the digit.
The output holds ``images`` (1797, 1, 8, 8) uint8, ``labels`` (1797,) uint8 and ``sha256``, the
hex digest of ``images.tobytes() + labels.tobytes()`` that :func:`minires.data.load_digits` checks.
"""

import gzip
import sys

import numpy as np

from minires.data.digits import PATH, checksum
from minires.io import atomic_write


def main(csv_path, out=PATH):
    with gzip.open(csv_path, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if rows.shape != (1797, 65) or rows[:, :64].min() < 0 or rows[:, :64].max() > 16:
        raise ValueError(
            f"{csv_path}: expected 1797 rows of 64 values in 0..16 and a label, got {rows.shape}"
        )
    images = rows[:, :64].astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = rows[:, 64].astype(np.uint8)
    with atomic_write(out) as f:
        np.savez_compressed(
            f, images=images, labels=labels, sha256=np.array(checksum(images, labels))
        )
    print(f"wrote {out}: {len(images)} images, sha256 {checksum(images, labels)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
