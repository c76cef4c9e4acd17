"""Tiny MNIST files in torchvision's raw IDX format, for tests on offline machines.

    from tests.mnist_files import write_fake_mnist
    write_fake_mnist(str(tmp_path))                       # 64 train + 32 test images
    MNIST(str(tmp_path), train=True, download=False)      # loads them

Each image is noise plus a bright 6x6 square whose position depends on the label, so a model
can learn them (a small MLP reaches high accuracy in a few epochs).
"""

from __future__ import annotations

import os
import struct

import numpy as np

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def label_square(label: int) -> tuple[int, int]:
    """Top-left corner of the bright square drawn for `label` (a 4x3 grid over 28x28)."""
    row, col = divmod(label, 4)
    return 2 + 8 * row, 1 + 7 * col


def fake_mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` uint8 images (n, 28, 28) and labels (n,), every class present when n >= 10."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        top, left = label_square(int(label))
        image[top : top + 6, left : left + 6] = rng.integers(200, 256, size=(6, 6))
    return images, labels


def _write_idx(path: str, magic: int, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        # IDX header: big-endian magic then one big-endian size per dimension.
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(root: str, n_train: int = 64, n_test: int = 32) -> None:
    """Create `root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`."""
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = fake_mnist_arrays(n, seed)
        image_file, label_file = FILES[split]
        _write_idx(os.path.join(raw, image_file), IMAGE_MAGIC, images)
        _write_idx(os.path.join(raw, label_file), LABEL_MAGIC, labels)
