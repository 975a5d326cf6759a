"""A torch Dataset over a `Taxonomy`: one image, its class at one level and its group at another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from hackrobust.hierarchy.taxonomy import Taxonomy

# The challenge's normalisation (its HiererchicalDataset), computed on modified-iNat.
CHALLENGE_MEAN = (0.4556, 0.4714, 0.3700)
CHALLENGE_STD = (0.2370, 0.2318, 0.2431)


def challenge_transforms(
    train: bool = True,
    size: int = 224,
    padding: int = 4,
    mean: Sequence[float] = CHALLENGE_MEAN,
    std: Sequence[float] = CHALLENGE_STD,
) -> Callable:
    """The challenge's pipeline: Resize(size), RandomCrop(size, padding), ToTensor, Normalize.

    The challenge applies it to every split. With ``train=False`` the random crop becomes a
    deterministic CenterCrop(size) without padding (the identity on a square image).
    """
    crop = T.RandomCrop(size, padding=padding) if train else T.CenterCrop(size)
    return T.Compose([T.Resize(size), crop, T.ToTensor(), T.Normalize(mean, std)])


class HierarchicalDataset(Dataset):
    """Items ``{"idx", "x", "y", "group"}``: ``y`` is the level-`target_level` class (default 2,
    the challenge's target) and ``group`` the level-`group_level` group (default 7, species).

    Images are read with PIL and converted to RGB; `transform` defaults to
    ``challenge_transforms(train=True)``.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        target_level: int = 2,
        group_level: int = 7,
        transform: Callable | None = None,
    ):
        self.taxonomy = taxonomy
        self.target_level = target_level
        self.group_level = group_level
        self.targets = taxonomy.labels(target_level)
        self.group_ids = taxonomy.groups(group_level)
        self.num_classes = taxonomy.num_classes(target_level)
        self.num_groups = taxonomy.num_classes(group_level)
        self.transform = challenge_transforms(train=True) if transform is None else transform

    def __len__(self) -> int:
        return len(self.taxonomy)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        path = self.taxonomy.path(index)
        try:
            with Image.open(path) as image:
                x = image.convert("RGB")
        except OSError as error:
            raise OSError(
                f"cannot read image {path} ({error}): replace or remove it, or build the "
                "Taxonomy with verify=True, on_error='skip' to leave broken files out"
            ) from error
        return {
            "idx": index,
            "x": self.transform(x),
            "y": int(self.targets[index]),
            "group": int(self.group_ids[index]),
        }
