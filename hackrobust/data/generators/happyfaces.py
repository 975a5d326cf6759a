"""HappyFaces: LFW faces with the word HAPPY or SAD written on them, from its real archives.

The HappyFaces benchmark (Armstrong, Cooper, Daniels-Koch and Gorman, Aligned AI, 2022;
Apache-2.0; github.com/alignedai/HappyFaces) is read from `<data_dir>/happyfaces`:

- `labeled_sets.tar.gz`: `labeled_sets/{FHWH,FSWS}/<name>_<tag>.jpg.gz`, 100 of each, every
  member gzipped on its own. The writing agrees with the face on every row.
- `validation_sets.tar.gz`: `validation_sets/{FHWH,FHWS,FSWH,FSWS}/<name>_<tag>.jpg`, 50 each.

Tags: F{H,S} the face is happy or sad, W{H,S} the writing says HAPPY or SAD. The label is the
face (1 happy, 0 sad); features are (face, writing). The benchmark's 600-image unlabeled set is
not distributed here, so the unlabeled and target sets are both cut from the validation faces,
per tag and disjointly: the target first (independent of the unlabeled mix rate, so a curve over
mix rates is scored on the same target rows), then the unlabeled rows from what remains.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from os import PathLike
from pathlib import Path

import numpy as np

from hackrobust.data.generators.draws import MIX_RATE_RANGE, Draw
from hackrobust.data.generators.mnist import default_data_dir
from hackrobust.data.layout import HackathonData
from hackrobust.data.sources.archive import cached_arrays
from hackrobust.data.sources.errors import SourceUnavailableError

FOLDER = "happyfaces"
ARCHIVES = {"labeled": "labeled_sets.tar.gz", "validation": "validation_sets.tar.gz"}
TAGS = ("FHWH", "FHWS", "FSWH", "FSWS")
CORRELATED, DECORRELATED = ("FHWH", "FSWS"), ("FHWS", "FSWH")
FEATURES = ("face", "writing")
LABEL_VALUES = (0, 1)  # 0 sad, 1 happy
CITATION = (
    'Armstrong, S; Cooper, J; Daniels-Koch, O; and Gorman, R, "The HappyFaces Benchmark", '
    "Aligned AI Limited published public benchmark, 2022"
)


class HappyFacesUnavailableError(SourceUnavailableError):
    """An archive of the benchmark is not in the data directory (there is no offline stand-in)."""

    def __init__(self, folder: Path, missing: list[str]):
        # The parent's message ends with an offline source to switch to; there is none here.
        FileNotFoundError.__init__(
            self,
            f"HappyFaces archive(s) {', '.join(missing)} not found in {folder}. Set the "
            f"HACKROBUST_DATA_DIR environment variable or pass paths.data_dir=... to the folder "
            f"that holds {FOLDER}/ with {' and '.join(ARCHIVES.values())} "
            "(github.com/alignedai/HappyFaces); this dataset has no offline stand-in.",
        )


def tag_features(tag: str) -> tuple[int, int]:
    """(face, writing) label values of a tag: "FHWS" is (1, 0), a happy face saying SAD."""
    if tag not in TAGS:
        raise ValueError(f"unknown HappyFaces tag {tag!r}; expected one of {TAGS}")
    return int(tag[1] == "H"), int(tag[3] == "H")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode_archive(archive: Path, size: int) -> dict[str, np.ndarray]:
    """Every `<set>/<tag>/<name>.jpg[.gz]` member as RGB size x size uint8 (N, 3, S, S),
    with its tag and file name, sorted by member name (tar order is not relied on)."""
    from PIL import Image

    rows = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not member.isfile() or not parts[-1].endswith((".jpg", ".jpg.gz")):
                continue
            if len(parts) < 2 or parts[-2] not in TAGS:
                raise ValueError(f"{archive}: member {member.name} is not in a folder named a tag")
            payload = tar.extractfile(member).read()
            if parts[-1].endswith(".gz"):
                payload = gzip.decompress(payload)
            image = Image.open(io.BytesIO(payload)).convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            rows.append((member.name, parts[-2], np.asarray(image).transpose(2, 0, 1)))
    rows.sort(key=lambda row: row[0])
    if not rows:
        raise ValueError(f"{archive} holds no <tag>/<name>.jpg[.gz] images")
    return {
        "images": np.stack([row[2] for row in rows]),
        "tags": np.array([row[1] for row in rows]),
        "names": np.array([row[0].rsplit("/", 1)[-1].split(".")[0] for row in rows]),
    }


def load_happyfaces_archives(
    data_dir: str | PathLike | None = None, image_size: int = 64
) -> dict[str, dict[str, np.ndarray]]:
    """{"labeled": ..., "validation": ...}, each {"images" uint8 (N, 3, S, S), "tags", "names"}.

    Decoded once per archive content and size, then kept as an .npz under
    `$HACKROBUST_CACHE_DIR/sources` (keyed by the archive's SHA-256, not only its mtime).
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    folder = Path(data_dir or default_data_dir()).expanduser() / FOLDER
    paths = {kind: folder / name for kind, name in ARCHIVES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise HappyFacesUnavailableError(folder, missing)
    out = {}
    for kind, path in paths.items():
        key = f"happyfaces-{kind}-{image_size}px-{_sha256(path)[:16]}"
        out[kind] = cached_arrays(path, key, lambda path=path: _decode_archive(path, image_size))
    return out


def _tag_counts(rng: np.random.Generator, n: int, mix_rate: float) -> dict[str, int]:
    """Rows per tag: round(mix_rate x n) decorrelated (FHWS, FSWH), the rest correlated (FHWH,
    FSWS), each pair split evenly; a random one of the pair takes an odd row."""
    if not 0 <= mix_rate <= 1:
        raise ValueError(f"mix rate must be in [0, 1], got {mix_rate}")
    if n < 0:
        raise ValueError(f"set sizes must be >= 0, got {n}")
    n_mixed = round(mix_rate * n)  # as `features.assign_features` counts mixed rows
    counts = {}
    for pair, total in ((CORRELATED, n - n_mixed), (DECORRELATED, n_mixed)):
        half, odd = divmod(total, 2)
        extra = int(rng.integers(2)) if odd else -1
        counts |= {tag: half + (i == extra) for i, tag in enumerate(pair)}
    return counts


def _take(
    by_tag: dict[str, np.ndarray], counts: dict[str, int], what: str, where: str
) -> np.ndarray:
    """The first `counts[tag]` of each tag's (already shuffled) row indices, consumed."""
    chosen = []
    for tag, count in counts.items():
        if count > len(by_tag[tag]):
            raise ValueError(
                f"the {what} set needs {count} {tag} faces but {where} has only "
                f"{len(by_tag[tag])} left; lower its size or change its mix rate"
            )
        chosen.append(by_tag[tag][:count])
        by_tag[tag] = by_tag[tag][count:]
    return np.concatenate(chosen)


def make_happyfaces(
    *,
    seed: int | None = 0,
    true_feature: str = "face",
    image_size: int = 64,
    n_labeled: int = 200,
    n_unlabeled: int = 50,
    n_target: int = 100,
    unlabeled_mix_rate: float = 0.5,
    target_mix_rate: float = 0.5,
    data_dir: str | None = None,
    draw: bool = False,
) -> HackathonData:
    """HappyFaces in the hackathon42 layout: RGB image_size x image_size, label 1 happy face.

    Labeled: n_labeled of the 200 labeled faces (FHWH and FSWS, half each). Target and unlabeled:
    disjoint draws from the 200 validation faces (50 per tag), round(mix rate x n) of each set
    decorrelated (FHWS, FSWH), the rest FHWH and FSWS; every pair split evenly. The defaults use
    100 target rows (25 per tag) and 50 unlabeled rows, the most that every unlabeled mix rate
    from 0 to 1 can have from the 25 faces per tag left. Deterministic given `seed`; the target
    rows depend on the seed only, never on the unlabeled set's size or mix rate.

    `draw=True` draws from the seed (see `draws`), in this order: the true feature ("face" or
    "writing"); the unlabeled mix rate in `draws.MIX_RATE_RANGE` (0.25 to 0.75), recorded under
    the metadata's "draw". The rows drawn for a given mix rate are those `draw=False` takes.
    """
    drawn = None
    if draw:
        true_feature, unlabeled_mix_rate, drawn = _drawn_options(seed)
    if true_feature not in FEATURES:
        raise ValueError(f"true_feature {true_feature!r} is not one of {list(FEATURES)}")
    archives = load_happyfaces_archives(data_dir, image_size)
    labeled_rng, target_rng, unlabeled_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    labeled, validation = archives["labeled"], archives["validation"]
    rows_labeled = _labeled_rows(labeled, labeled_rng, n_labeled)
    rows_target, rows_unlabeled = _validation_rows(
        validation, target_rng, unlabeled_rng, (n_target, target_mix_rate),
        (n_unlabeled, unlabeled_mix_rate),
    )  # fmt: skip
    x_labeled, f_labeled, names_labeled = _subset(labeled, rows_labeled, labeled_rng)
    x_target, f_target, names_target = _subset(validation, rows_target, target_rng)
    x_unlabeled, f_unlabeled, names_unlabeled = _subset(validation, rows_unlabeled, unlabeled_rng)
    metadata = _metadata(
        true_feature, seed, (f_labeled, f_unlabeled, f_target),
        (names_labeled, names_unlabeled, names_target), unlabeled_mix_rate, target_mix_rate,
        image_size,
    )  # fmt: skip
    if drawn is not None:
        metadata["draw"] = drawn
    return _with_answer_key(
        (x_labeled, f_labeled), (x_unlabeled, f_unlabeled), (x_target, f_target),
        FEATURES.index(true_feature), metadata,
    )  # fmt: skip


def _drawn_options(seed: int | None) -> tuple[str, float, dict]:
    """`draw=True`'s true feature and unlabeled mix rate, drawn in that order, and the record of
    the draw."""
    pick = Draw(seed, "happyfaces")
    return pick.true_feature(FEATURES), pick.mix_rate(MIX_RATE_RANGE), pick.record


def _labeled_rows(labeled: dict, rng: np.random.Generator, n_labeled: int) -> np.ndarray:
    """Row indices of `n_labeled` labeled faces: half FHWH, the other half (and an odd one) FSWS,
    each tag's rows in a random order."""
    half = {CORRELATED[0]: n_labeled // 2, CORRELATED[1]: n_labeled - n_labeled // 2}
    return _take(_shuffled_by_tag(labeled, rng), half, "labeled", ARCHIVES["labeled"])


def _validation_rows(
    validation: dict,
    target_rng: np.random.Generator,
    unlabeled_rng: np.random.Generator,
    target: tuple[int, float],
    unlabeled: tuple[int, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint target and unlabeled row indices of the validation faces; `target` and
    `unlabeled` are each (size, mix rate). The target's rng shuffles every tag's rows and the
    target takes its rows first, so they depend on neither the unlabeled size nor its rate."""
    (n_target, target_mix_rate), (n_unlabeled, unlabeled_mix_rate) = target, unlabeled
    pool = _shuffled_by_tag(validation, target_rng)
    where = ARCHIVES["validation"]
    rows_target = _take(pool, _tag_counts(target_rng, n_target, target_mix_rate), "target", where)
    counts_unlabeled = _tag_counts(unlabeled_rng, n_unlabeled, unlabeled_mix_rate)
    rows_unlabeled = _take(pool, counts_unlabeled, "unlabeled", where + " after the target")
    return rows_target, rows_unlabeled


def _with_answer_key(
    labeled: tuple[np.ndarray, np.ndarray],
    unlabeled: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    true_index: int,
    metadata: dict,
) -> HackathonData:
    """The (images, features) sets as a `HackathonData`, labelled by feature `true_index`."""
    (x_labeled, f_labeled), (x_unlabeled, f_unlabeled) = labeled, unlabeled
    x_target, f_target = target
    return HackathonData(
        x_labeled=x_labeled,
        y_labeled=f_labeled[:, true_index].copy(),
        x_unlabeled=x_unlabeled,
        x_target=x_target,
        y_target=f_target[:, true_index].copy(),
        features_unlabeled=f_unlabeled,
        features_target=f_target,
        metadata=metadata,
    )


def _shuffled_by_tag(arrays: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {tag: rng.permutation(np.flatnonzero(arrays["tags"] == tag)) for tag in TAGS}


def _subset(arrays: dict, rows: np.ndarray, rng: np.random.Generator):
    """Rows `rows` of an archive, shuffled: images in [0, 1], (face, writing) features, names."""
    rows = rows[rng.permutation(len(rows))]  # no tag-sorted row order
    x = arrays["images"][rows].astype(np.float32) / np.float32(255)
    features = np.array([tag_features(t) for t in arrays["tags"][rows]], dtype=np.int64)
    return np.ascontiguousarray(x), features.reshape(-1, 2), arrays["names"][rows].tolist()


def _tag_count(features: np.ndarray) -> dict[str, int]:
    return {t: int((features == tag_features(t)).all(axis=1).sum()) for t in TAGS}


def _actual_mix(features: np.ndarray) -> float:
    return float((features[:, 0] != features[:, 1]).mean()) if len(features) else 0.0


def _metadata(
    true_feature, seed, features, names, unlabeled_mix_rate, target_mix_rate, image_size
) -> dict:
    """The folder's metadata; `features` and `names`: (labeled, unlabeled, target)."""
    f_labeled, f_unlabeled, f_target = features
    names_labeled, names_unlabeled, names_target = names
    return {
        "name": "happyfaces",
        "features": list(FEATURES),
        "true_feature": true_feature,
        "true_feature_index": FEATURES.index(true_feature),
        "label_values": list(LABEL_VALUES),
        "label_meaning": {"0": "sad", "1": "happy"},
        "seed": seed,
        "n_labeled": len(f_labeled),
        "n_unlabeled": len(f_unlabeled),
        "n_target": len(f_target),
        "unlabeled_mix_rate": unlabeled_mix_rate,
        "target_mix_rate": target_mix_rate,
        "unlabeled_mix_rate_actual": _actual_mix(f_unlabeled),
        "target_mix_rate_actual": _actual_mix(f_target),
        # A benchmark, not a hackathon exercise: there is no "default submission" to beat, and
        # the target is balanced, so the score of guessing (or of reading the writing) is 0.5.
        "default_score": 0.5,
        "image_size": image_size,
        "tag_counts": {
            "labeled": _tag_count(f_labeled),
            "unlabeled": _tag_count(f_unlabeled),
            "target": _tag_count(f_target),
        },
        "files": {"labeled": names_labeled, "unlabeled": names_unlabeled, "target": names_target},
        "source": "happyfaces",
        "license": "Apache-2.0",
        "citation": CITATION,
    }
