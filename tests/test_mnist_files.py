"""The fake MNIST writer produces files torchvision's MNIST loads, with learnable labels."""

from __future__ import annotations

import os

import numpy as np
import torch
from torchvision.datasets import MNIST
from torchvision.transforms import ToTensor

from tests.mnist_files import FILES, label_square, write_fake_mnist


def test_files_are_where_torchvision_looks(tmp_path):
    write_fake_mnist(str(tmp_path), n_train=20, n_test=10)
    raw = tmp_path / "MNIST" / "raw"
    expected = sorted(name for pair in FILES.values() for name in pair)
    assert sorted(os.listdir(raw)) == expected
    # 16-byte header + 28*28 bytes per image; 8-byte header + 1 byte per label.
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 20 * 28 * 28
    assert (raw / "t10k-labels-idx1-ubyte").stat().st_size == 8 + 10


def test_torchvision_loads_them_offline(tmp_path):
    write_fake_mnist(str(tmp_path), n_train=64, n_test=32)
    train = MNIST(str(tmp_path), train=True, download=False, transform=ToTensor())
    test = MNIST(str(tmp_path), train=False, download=False)
    assert len(train) == 64 and len(test) == 32
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= label <= 9
    assert sorted(set(train.targets.tolist())) == list(range(10))
    assert train.data.dtype == torch.uint8 and tuple(train.data.shape) == (64, 28, 28)


def test_labels_are_recoverable_from_the_images(tmp_path):
    write_fake_mnist(str(tmp_path), n_train=50, n_test=30)
    test = MNIST(str(tmp_path), train=False, download=False)
    data = test.data.numpy().astype(np.float32)
    # The brightest of the ten candidate squares names the label.
    scores = np.stack(
        [data[:, t : t + 6, c : c + 6].mean(axis=(1, 2)) for t, c in map(label_square, range(10))],
        axis=1,
    )
    assert (scores.argmax(axis=1) == test.targets.numpy()).all()


def test_train_and_test_differ(tmp_path):
    write_fake_mnist(str(tmp_path), n_train=32, n_test=32)
    train = MNIST(str(tmp_path), train=True, download=False)
    test = MNIST(str(tmp_path), train=False, download=False)
    assert not torch.equal(train.data, test.data)
