"""Where the data sets come from ("The data" section of notebooks 01-05, through `datasets`): local
copies in their published formats, tensorflow_datasets, Kaggle and plain downloads. A source that
cannot be reached is a one-sentence `DataError` naming it and where to put the files."""

from __future__ import annotations

import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers.errors import DataError
from helpers.folders import is_data
from helpers.settings import env_flag, keras_home, project_root

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CATS_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
# What tensorflow_datasets downloads to prepare cats_vs_dogs (23,262 images, labels 0 cat, 1 dog).
CATS_DOGS_TFDS_URL = ("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
                      "kagglecatsanddogs_5340.zip")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
ANIMAL_CLASSES = ("cat", "cow", "dog", "elephant", "horse")
CATS_DOGS_CLASSES = ("cats", "dogs")
SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
ANIMALS_LAYOUT = ("one subfolder per class (animals/<class>/*.jpg), or train/ and test/ folders, and optionally "
                  "val/ (or valid/, validation/; any case), that each hold those class subfolders")


def data_root() -> Path:
    """The course's data/ folder, where downloads land (notebooks 01-05, "The data")."""
    return project_root() / "data"


def can_download(url: str, timeout: float = 5.0) -> bool:
    """Whether `url` answers, asked the way Keras and tfds download (through $HTTPS_PROXY when set); False
    at once when $COURSE_OFFLINE is set (notebooks 01-05: "Setup", the ImageNet weights, and "The data")."""
    if env_flag("COURSE_OFFLINE"):
        return False
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:  # it answered (a 403 or 405 still means the host is there)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tfds_builder(name: str):
    """A tensorflow_datasets builder in $TFDS_DATA_DIR (notebooks 01 and 04, "The data")."""
    import tensorflow_datasets as tfds
    return tfds.builder(name, data_dir=os.environ.get("TFDS_DATA_DIR"))  # read now, not at import


def tfds_examples(builder, url: str, missing: str) -> tuple[tf.data.Dataset, np.ndarray]:
    """A tfds data set's 'train' split, undecoded, and its labels; prepared (downloaded from `url`) when
    needed, else DataError(`missing`) (notebooks 01 and 04, "The data")."""
    import tensorflow_datasets as tfds
    if not builder.is_prepared():
        if not can_download(url):
            raise DataError(missing)
        builder.download_and_prepare()
    raw = builder.as_dataset(split="train", shuffle_files=False, as_supervised=True,
                             decoders={"image": tfds.decode.SkipDecoding()})
    labels = list(raw.map(lambda _, y: y).batch(4096).as_numpy_iterator())
    return raw, np.concatenate(labels or [np.zeros(0)]).astype(np.int32)


def cats_dogs_root(base: Path) -> Path | None:
    """The folder holding train/ and validation/ at or just below `base` (notebook 01, "The data")."""
    candidates = (base, base / "cats_and_dogs_filtered", base / "cats_and_dogs")
    return next((c for c in candidates if (c / "train").is_dir() and (c / "validation").is_dir()), None)


def cats_dogs_missing(tfds_dir: str) -> str:
    """What to do when no cats-vs-dogs source can be reached (notebook 01, "The data")."""
    target = data_root()
    return (f"Cats vs dogs is neither prepared by tensorflow_datasets in {tfds_dir} nor in {target}, and neither "
            f"{CATS_DOGS_TFDS_URL} (tfds cats_vs_dogs) nor {CATS_DOGS_URL} can be reached; run tfds.builder("
            "'cats_vs_dogs').download_and_prepare() on a machine with a network and copy its folder into "
            f"{tfds_dir}, or unzip cats_and_dogs_filtered.zip into {target}/ (giving {target}/cats_and_dogs_filtered"
            "/train and validation), or set DATA_DIR to your own train/ + validation/ tree.")


def download_cats_dogs(tfds_dir: str) -> Path:
    """The public 2,000-image subset, downloaded into data/ (notebook 01, "The data": the named fallback)."""
    if not can_download(CATS_DOGS_URL):
        raise DataError(cats_dogs_missing(tfds_dir))
    import keras
    data_root().mkdir(parents=True, exist_ok=True)
    path = keras.utils.get_file("cats_and_dogs_filtered.zip", origin=CATS_DOGS_URL, extract=True,
                                cache_dir=str(data_root()), cache_subdir="")
    root = cats_dogs_root(Path(path)) or cats_dogs_root(data_root())
    if root is None:
        raise DataError(f"The download from {CATS_DOGS_URL} did not contain train/ and validation/.")
    return root


def flowers_folder(base: Path) -> Path | None:
    """`base`/flower_photos or `base` when it holds the five class folders (notebook 04, "The data")."""
    return next((c for c in (base / "flower_photos", base)
                 if c.is_dir() and all((c / name).is_dir() for name in FLOWER_CLASSES)), None)


def flowers_missing(builder) -> str:
    """What to do when tf_flowers cannot be reached (notebook 04, "The data")."""
    return (f"tf_flowers is not prepared in {builder.data_dir} and {FLOWERS_URL} cannot be reached; extract "
            f"flower_photos.tgz into {data_root()}/ (giving {data_root()}/flower_photos/daisy, ...) or set DATA_DIR "
            "to that folder.")


def presplit(root: Path) -> dict[str, Path]:
    """The split folders (any case) of a tree with train/ and test/, else {} (notebook 02, "The data")."""
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = {split: next(p for p in folders if p.name.lower() in names)
             for split, names in SPLIT_FOLDERS.items() if any(p.name.lower() in names for p in folders)}
    return found if "train" in found and "test" in found else {}


def download_kaggle(dataset: str) -> Path:
    """Download a Kaggle data set with kagglehub, or say in one sentence why not (notebook 02, "The data")."""
    home = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    if not ((os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
            or any(p.is_file() for p in (home / "kaggle.json", Path.home() / ".config/kaggle/kaggle.json"))):
        raise DataError(f"Downloading {dataset!r} from Kaggle needs credentials: set KAGGLE_USERNAME and KAGGLE_KEY, "
                        "or put kaggle.json in ~/.kaggle/; or download it yourself into data/animals/.")
    if not can_download("https://www.kaggle.com"):
        raise DataError(f"www.kaggle.com cannot be reached to download {dataset!r}; download it elsewhere and put "
                        f"it in {data_root() / 'animals'} ({ANIMALS_LAYOUT}).")
    try:
        import kagglehub
    except ImportError as error:
        raise DataError("Downloading from Kaggle needs kagglehub: pip install kagglehub.") from error
    path = Path(kagglehub.dataset_download(dataset))
    while True:  # Kaggle archives often wrap the class folders in one or two extra folders
        subfolders = [p for p in path.iterdir() if p.is_dir() and is_data(p.name)]
        if len(subfolders) != 1 or presplit(path):
            return path
        path = subfolders[0]


def _cifar_batch(handle) -> tuple[np.ndarray, np.ndarray]:
    batch = pickle.load(handle, encoding="bytes")
    return (np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
            np.asarray(batch[b"labels"], np.uint8))


def read_cifar10(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the official python version, a `cifar-10-batches-py/` folder or the .tar.gz (03, 05: "The data")."""
    names, parts = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], {}
    if Path(path).is_dir():
        for name in names:
            with open(Path(path) / name, "rb") as handle:
                parts[name] = _cifar_batch(handle)
    else:
        with tarfile.open(path, "r:gz") as archive:
            for member in (m for m in archive.getmembers() if Path(m.name).name in names):
                parts[Path(member.name).name] = _cifar_batch(archive.extractfile(member))
    missing = [n for n in names if n not in parts]
    if missing:
        raise DataError(f"{path} does not hold the CIFAR-10 batch {missing[0]}; is it the python version?")
    train = [parts[n] for n in names[:5]]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])), parts["test_batch"]


def find_cifar10(base: Path | None) -> Path | None:
    """A local copy of CIFAR-10: in `base`, in data/, or in Keras's download cache (03, 05: "The data")."""
    places = ([base] if base is not None else []) + [
        data_root(), keras_home() / "datasets", keras_home() / "datasets" / "cifar-10-batches-py-target"]
    for candidate in (c for place in places for c in (place / "cifar-10-batches-py", place / "cifar-10-python.tar.gz", place)):
        if (candidate.is_dir() and (candidate / "data_batch_1").is_file()) or \
                (candidate.is_file() and candidate.name.endswith(".tar.gz")):
            return candidate
    return None


def cifar10_arrays(data_dir: Path | None):
    """((x_train, y_train), (x_test, y_test), source) from DATA_DIR, a local copy or Keras (03, 05: "The data")."""
    found = find_cifar10(data_dir)
    if data_dir is not None and found is None:
        raise DataError(f"{data_dir} holds neither cifar-10-batches-py/ nor cifar-10-python.tar.gz; download "
                        f"{CIFAR10_URL} into it.")
    if found is not None:
        return (*read_cifar10(found), str(found))
    if not can_download(CIFAR10_URL):
        raise DataError(f"CIFAR-10 is not on this machine and {CIFAR10_URL} cannot be reached; put "
                        "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/) into "
                        f"{data_root()}/ or {keras_home() / 'datasets'}/, where Keras caches it.")
    import keras
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return (x_train, y_train.reshape(-1)), (x_test, y_test.reshape(-1)), "keras.datasets.cifar10"
