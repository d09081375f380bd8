"""The fixed lists of named options that are not networks: params validate against these.

The networks (`train.arch`) and generators (`gan.variant`) are not listed here for params: they
are the names registered in `pneumogan.core.registry`, which params read when they validate.
"""

SIZES = (28, 64, 128, 224)  # MedMNIST's official image sides
SOURCES = ("medmnist", "folder")  # data.source: a MedMNIST file, or a tree of image files
FITS = ("crop", "pad")  # data.fit: how a folder image is made square before resizing
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, then MPS, then CPU
# fuse.method: what fills the minority class (weighted: nothing, its loss is weighted up instead)
METHODS = ("gan", "oversample", "none", "weighted")
DIFFAUGMENT = ("color", "translation", "cutout")  # gan.diffaugment policies (Zhao et al., 2020)
LABELS = {0: "normal", 1: "pneumonia"}  # label value -> class name
