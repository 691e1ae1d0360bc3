"""Which images a network classified correctly, one bit per image: how a trial stores its validation result.

Two networks evaluated on the same images are compared image by image (McNemar's test, report/stats.py),
which needs more than their accuracies. 2,000 images take 250 bytes, stored as base64 text (336 characters) in
the trial's attributes. Bits follow the split's image order, first image in the highest bit of the first byte
(numpy's packbits). Plain numpy: the trainer writes it, the report reads it without torch.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np


def pack_correct(correct: object) -> str:
    """A boolean vector (one entry per image) as base64 text."""
    bits = np.asarray(correct, dtype=bool).ravel()
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_correct(text: str, images: int) -> np.ndarray:
    """The boolean vector of `images` entries that `pack_correct` wrote; ValueError when the text does not hold
    exactly that many images."""
    try:
        packed = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not a correctness vector: {exc}") from None
    if len(packed) != (images + 7) // 8:
        raise ValueError(f"a correctness vector of {len(packed)} bytes does not hold {images} images")
    return np.unpackbits(packed, count=images).astype(bool)
