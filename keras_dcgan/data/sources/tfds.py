"""`TfdsSource`: a TensorFlow Datasets dataset (`--dataset=mnist`, or "tfds:NAME"), and
`square_resize`, the crop and resize of decoded image tensors (what Pillow does for the other
sources).

Full-size datasets (`imagenet2012`, `celeb_a`, ...) are min-resized and centre-cropped, as the
paper prepared ImageNet 32x32: the largest centred square is resized to the model's size, which
is the shorter side resized to that size and the centre cut out. `imagenet_resized/32x32` is
another thing: TFDS stores each whole image already squashed to 32x32 (Chrabaszcz et al. 2017,
box resize, aspect ratio not kept), so its crops are the squashed images.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_dcgan import validation
from keras_dcgan.data.decode import TOO_SMALL
from keras_dcgan.data.pipeline import epoch_seed, keep_set
from keras_dcgan.data.sources.base import ImageSource
from keras_dcgan.errors import UserError

LSUN_HELP = (
    "TFDS cannot prepare LSUN on TF 2.21 (its builder needs tensorflow-io). Download LSUN's "
    "LMDB export instead (README, 'Getting LSUN': http://dl.yf.io/lsun/scenes/"
    "bedroom_train_lmdb.zip, 42.77 GiB), unzip it and pass --dataset=/data/bedroom_train_lmdb."
)

# Centre crops of known datasets, applied before the square crop and resize: {TFDS name: side}.
# celeb_a: the aligned faces are 218x178 with the face in the middle; the 108x108 centre crop of
# DCGAN-tensorflow (carpedm20, the most reproduced DCGAN on CelebA; rows 55-162, columns 35-142)
# keeps the eyes, nose and mouth (the alignment puts the 5 landmarks around the centre) with
# little hair and background, close to the paper's tight face crops; the plain square crop
# (178x178) spends much of 64x64 on hair, neck and background. Not checked on the real data
# here (no CelebA on this machine): 140 (BEGAN's crop) is the choice for whole heads.
KNOWN_CROPS = {"celeb_a": 108}

# The files of TFDS's celeb_a builder (Google Drive links that often fail with "quota exceeded").
CELEB_A_FILES = (
    "img_align_celeba.zip, list_eval_partition.txt, list_attr_celeba.txt, "
    "list_landmarks_align_celeba.txt, identity_CelebA.txt"
)


def celeb_a_help(data_dir_root) -> str:
    """How to prepare celeb_a by hand when its download fails (`data_dir_root`: TFDS's
    data_dir, whose downloads/manual folder the download manager reads first)."""
    manual = f"{data_dir_root}/downloads/manual"
    return (
        f"CelebA's Google Drive download often fails (quota). Download {CELEB_A_FILES} from "
        f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped images, Anno, Eval) "
        f"into {manual}/ and run again: TFDS takes files found there instead of downloading."
    )


def _base_name(name: str) -> str:
    """ "celeb_a:2.1.0" -> "celeb_a"; "lsun/bedroom" -> "lsun/bedroom"."""
    return name.partition(":")[0]


IMAGENET_HELP = (
    "TFDS cannot download ImageNet (ILSVRC 2012) itself. Download ILSVRC2012_img_train.tar and "
    "ILSVRC2012_img_val.tar from https://image-net.org (an account is needed), put them in "
    "DATA_DIR/downloads/manual/ and run `tfds build imagenet2012 --data_dir=DATA_DIR` (about "
    "150 GB), then pass --data_dir=DATA_DIR. Or pass a folder of ImageNet images "
    "(--dataset=/data/imagenet/train: the same min-resize and centre crop). "
    "--dataset=imagenet_resized/32x32 is the squashed variant: whole images resized to 32x32 "
    "without keeping their aspect ratio, not the paper's centre crops."
)
# Datasets that TFDS cannot download by itself, and how to get them.
MANUAL_HELP = {"imagenet2012": IMAGENET_HELP}


def _manual_help(name: str) -> str | None:
    return MANUAL_HELP.get(_base_name(name))


class TfdsSource(ImageSource):
    """A TensorFlow Datasets dataset with an "image" feature (the pipeline drops the labels;
    `labelled_arrays` gives them, for the classification protocols of `keras_dcgan.analysis`).

    Prepared data under `data_dir` is used as is; otherwise it is downloaded and prepared first
    (`download=True`), except LSUN, which TFDS cannot prepare on TF 2.21 (reading an unprepared
    LSUN raises an error that points to the LMDB route), and ImageNet (`imagenet2012`), whose
    files must be downloaded by hand (`IMAGENET_HELP`: the error says how).

    Every image is min-resized and centre-cropped to the model's size (`square_resize`).
    `crop`: the side of a centre crop taken before that (e.g. 108 for CelebA's faces); None
    takes the dataset's rule from `KNOWN_CROPS` (none for most datasets), 0 turns it off.
    """

    kind = "tfds"
    shuffles_fully = False  # shuffled files, then a buffer
    skips_by_id = False

    def __init__(self, name: str, data_dir: str | None = None, download: bool = True,
                 crop: int | None = None):  # fmt: skip
        import tensorflow_datasets as tfds

        super().__init__(name)
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # tfds raises DatasetNotFoundError and friends
            raise UserError(f"Unknown TFDS dataset {name!r}: {e}") from None
        self.download = download and not name.startswith("lsun")
        features = getattr(self.builder.info, "features", None)
        if features is not None and "image" not in features:
            raise UserError(f"TFDS {name!r} has no 'image' feature (features: {list(features)}).")
        if crop is None:
            crop = KNOWN_CROPS.get(_base_name(name), 0)
        self.crop = validation.non_negative_int(crop, "crop") or None

    def num_examples(self, split="train", holdout_fraction=0.0, keep_list=None) -> int | None:
        if keep_list is not None:
            return None
        try:
            return int(self.builder.info.splits[split].num_examples)
        except Exception:
            return None

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0):  # fmt: skip
        import tensorflow_datasets as tfds

        if skip_examples:
            raise UserError("TFDS sources skip whole batches (ImageSource.dataset).")
        if epoch is not None:
            seed = epoch_seed(seed, epoch)

        if holdout_fraction:
            raise UserError(
                "holdout_fraction is for folders and LMDBs; for TFDS use a split such as "
                "'train[:90%]'."
            )
        if split == "all":
            split = "+".join(self.builder.info.splits.keys())
        if self.download:
            self.prepare()  # a failed download says what to do
        read_config = tfds.ReadConfig(
            shuffle_seed=seed, input_context=input_context, add_tfds_id=True
        )
        try:
            ds = self.builder.as_dataset(
                split=split, shuffle_files=shuffle, read_config=read_config
            )
        except Exception as e:
            if self.name.startswith("lsun"):
                raise UserError(
                    f"TFDS {self.name!r} is not prepared under {self.builder.data_dir!r}. "
                    f"{LSUN_HELP}"
                ) from None
            raise UserError(f"Cannot read TFDS {self.name!r} split {split!r}: {e}") from None
        keep = keep_set(keep_list)
        if keep is not None:
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(sorted(keep), tf.string), tf.ones(len(keep), tf.int32)
                ),
                default_value=0,
            )
            ds = ds.filter(lambda ex: table.lookup(ex["tfds_id"]) > 0)
        skip_log, size = self.skip_log, image_size

        def record_small(item_id, height, width):
            self_id = bytes(item_id).decode("utf-8", "replace")
            skip_log.add(self_id, TOO_SMALL, f"{width}x{height} < {size}")
            return False

        crop = self.crop

        def usable(ex):
            shape = tf.shape(ex["image"])
            side = tf.minimum(shape[0], shape[1])
            small = (tf.minimum(side, crop) if crop else side) < image_size
            return tf.cond(
                small,
                lambda: tf.numpy_function(
                    record_small, [ex["tfds_id"], shape[0], shape[1]], tf.bool, stateful=True
                ),
                lambda: tf.constant(True),
            )

        if small_images == "skip":
            ds = ds.filter(usable)
        return ds.map(
            lambda ex: (ex["tfds_id"], square_resize(ex["image"], image_size, channels, crop)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def fingerprint(self) -> str:
        crop = f":crop{self.crop}" if self.crop else ""
        return f"tfds:{self.builder.info.full_name}:{self.builder.data_dir}{crop}"

    def num_classes(self) -> int:
        """The number of classes of the dataset's "label" feature; UserError when it has none."""
        features = self.builder.info.features
        if "label" not in features or not hasattr(features["label"], "num_classes"):
            raise UserError(f"TFDS {self.name!r} has no class 'label' feature.")
        return int(features["label"].num_classes)

    def prepare(self) -> None:
        """Downloads and prepares the data under `data_dir` unless it is there (with `download`);
        one-line UserErrors when it is missing and cannot be prepared."""
        if self.builder.is_prepared():
            return
        where = self.builder.data_dir
        if not self.download:
            raise UserError(f"TFDS {self.name!r} is not prepared under {where!r}.")
        self._download_and_prepare()

    def _data_dir_root(self) -> str:
        """TFDS's data_dir (the builder's `data_dir` is `<root>/<name>/<version>`)."""
        root = getattr(self.builder, "_data_dir_root", None)
        return str(root) if root else os.path.dirname(os.path.dirname(self.builder.data_dir))

    def _download_and_prepare(self) -> None:
        """`download_and_prepare`, its failure one UserError saying how to prepare the data."""
        where = self.builder.data_dir
        manual = _manual_help(self.name)
        try:
            self.builder.download_and_prepare()
        except Exception as e:  # no network, a missing extra, a full disk, no manual files ...
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e) else ''}"
            manual_dir = os.path.join(self._data_dir_root(), "downloads", "manual")
            if manual is not None and not (os.path.isdir(manual_dir) and os.listdir(manual_dir)):
                raise UserError(
                    f"TFDS {self.name!r} is not prepared under {where!r}, and {manual_dir!r} "
                    f"holds no downloaded files to prepare it from. {manual}"
                ) from None
            if manual is not None:
                raise UserError(
                    f"TFDS {self.name!r} is not prepared under {where!r} ({reason}). {manual}"
                ) from None
            hint = (
                celeb_a_help(self._data_dir_root()) if _base_name(self.name) == "celeb_a"
                else f"Prepare it where the network is reachable (e.g. `tfds build {self.name} "
                "--data_dir=DIR`) and pass that data_dir."
            )  # fmt: skip
            raise UserError(
                f"TFDS {self.name!r} is not prepared under {where!r} and preparing it "
                f"failed ({reason}). {hint}"
            ) from None

    def labelled_arrays(self, split: str, image_size: int, channels: int):
        """(uint8 images [N, size, size, channels], int64 labels [N]) of a whole split, in its
        stored order: the images as the pipeline crops and resizes them (`square_resize`, no
        image skipped), the "label" feature beside them. The data must be prepared."""
        try:
            ds = self.builder.as_dataset(split=split, shuffle_files=False)
        except Exception as e:
            raise UserError(f"Cannot read TFDS {self.name!r} split {split!r}: {e}") from None
        ds = ds.map(
            lambda ex: (square_resize(ex["image"], image_size, channels, self.crop), ex["label"]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        images, labels = [], []
        for image, label in ds.batch(1024).prefetch(2).as_numpy_iterator():
            images.append(image)
            labels.append(label)
        if not images:
            raise UserError(f"TFDS {self.name!r} split {split!r} is empty.")
        return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def square_resize(image: tf.Tensor, image_size: int, channels: int, crop: int | None = None):
    """A decoded uint8 image [H, W, C] (C 1, 3 or 4) -> uint8 [size, size, channels]: centre crop
    to a square (of side `crop` when given and the image is larger: `KNOWN_CROPS`), area resize
    (bicubic when upscaling), channels converted (alpha dropped).

    Cropping the largest centred square and resizing it is the paper's min-resize and centre
    crop (shorter side resized to `image_size`, the centre `image_size` x `image_size` kept):
    the same pixels, without resizing the part that is cut away. The folder and LMDB sources do
    the same with Pillow (`keras_dcgan.data.decode`). A 32x32 image (`imagenet_resized/32x32`,
    already squashed whole to 32x32 by TFDS) passes unchanged."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    image = image[..., :3] if image.shape[-1] == 4 else image
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    if crop:
        side = tf.minimum(side, crop)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image = image[top : top + side, left : left + side]
    area = tf.image.resize(image, (image_size, image_size), method="area")
    bicubic = tf.image.resize(image, (image_size, image_size), method="bicubic")
    image = tf.where(side >= image_size, area, bicubic)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    if channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return tf.ensure_shape(image, (image_size, image_size, channels))


def looks_like_tfds(name: str) -> bool:
    """Whether `name` (e.g. "mnist", "lsun/bedroom", "cifar10:3.0.2") is a TFDS builder."""
    import tensorflow_datasets as tfds

    try:  # the local registry only (list_builders() also asks a remote community index)
        tfds.builder_cls(name.split("/")[0].split(":")[0])
    except Exception:
        return False
    return True
