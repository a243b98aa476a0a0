"""Class names and two-level class hierarchies (fine class -> coarse class) of the supported datasets.

Each hierarchy is a pair ``(coarse_classes, fine_to_coarse)``: the superclass names and, for each fine
label index, the index of its superclass.

- CIFAR-10: ``vehicles`` = airplane, automobile, ship, truck; ``animals`` = the other six.
- CIFAR-100: the 20 official superclasses (the pickle's ``coarse_labels``); ``CIFAR100_FINE_TO_COARSE``
  is the official mapping for the alphabetical fine-class order used by the pickles.
- Fashion-MNIST (a grouping chosen here, the dataset has none): ``tops`` = T-shirt/top, Pullover, Coat,
  Shirt; ``bottoms-and-dresses`` = Trouser, Dress; ``footwear`` = Sandal, Sneaker, Ankle boot;
  ``bags`` = Bag.
- Mini-CIFAR (airplane, automobile, bird, cat): ``vehicles`` = airplane, automobile; ``animals`` = bird,
  cat.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_COARSE_CLASSES", "CIFAR10_FINE_TO_COARSE",
    "CIFAR100_CLASSES", "CIFAR100_COARSE_CLASSES", "CIFAR100_FINE_TO_COARSE",
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_COARSE_CLASSES", "FASHION_MNIST_FINE_TO_COARSE",
    "MINI_CIFAR_CLASSES", "MINI_CIFAR_COARSE_CLASSES", "MINI_CIFAR_FINE_TO_COARSE",
    "coarse_of", "fine_to_coarse_from_pairs",
]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_COARSE_CLASSES = ["vehicles", "animals"]
CIFAR10_FINE_TO_COARSE = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]

MINI_CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat"]
MINI_CIFAR_COARSE_CLASSES = ["vehicles", "animals"]
MINI_CIFAR_FINE_TO_COARSE = [0, 0, 1, 1]

CIFAR100_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
    "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
    "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
    "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
]
CIFAR100_COARSE_CLASSES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]
CIFAR100_FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_COARSE_CLASSES = ["tops", "bottoms-and-dresses", "footwear", "bags"]
FASHION_MNIST_FINE_TO_COARSE = [0, 1, 0, 1, 0, 2, 0, 2, 3, 2]


def coarse_of(labels: Tensor, fine_to_coarse: list[int]) -> Tensor:
    """Map fine labels (int tensor) to coarse labels with the list ``fine_to_coarse``; returns int64."""
    table = torch.as_tensor(fine_to_coarse, dtype=torch.long, device=labels.device)
    return table[labels.long()]


def fine_to_coarse_from_pairs(fine: Tensor, coarse: Tensor, num_fine: int) -> list[int]:
    """Recover the fine -> coarse table from per-sample ``(fine, coarse)`` label pairs.

    Returns a list of ``num_fine`` coarse indices (-1 for a fine class without samples). Raises
    ``ValueError`` if one fine class appears with two different coarse labels.
    """
    table = [-1] * num_fine
    pairs = torch.unique(torch.stack([fine.long(), coarse.long()], 1), dim=0).tolist()
    for f, c in pairs:
        if table[f] not in (-1, c):
            raise ValueError(f"fine class {f} appears under two coarse classes ({table[f]} and {c})")
        table[f] = c
    return table
