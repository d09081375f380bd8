"""Every list of named options, in one place: params validate against these, registries use them.

Kept free of heavy imports so that params can be checked before torch loads.
"""

SIZES = (28, 64, 128, 224)  # MedMNIST's official image sides
SOURCES = ("medmnist", "folder")  # data.source: a MedMNIST file, or a tree of image files
FITS = ("crop", "pad")  # data.fit: how a folder image is made square before resizing
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, then MPS, then CPU
# fuse.method: what fills the minority class (weighted: nothing, its loss is weighted up instead)
METHODS = ("gan", "oversample", "none", "weighted")
GAN_VARIANTS = ("dcgan", "sn_hinge", "resnet_sn", "ddpm")  # gan.variant (ddpm: diffusion)
GAN_VARIANT_NAMES = {  # for people
    "dcgan": "DCGAN",
    "sn_hinge": "spectral-norm D + hinge loss",
    "resnet_sn": "SNGAN ResNet (residual G, spectral-norm residual D, hinge loss)",
    "ddpm": "denoising diffusion (DDPM UNet, DDIM sampling)",
}
DIFFAUGMENT = ("color", "translation", "cutout")  # gan.diffaugment policies (Zhao et al., 2020)
ADVERSARIAL_VARIANTS = ("dcgan", "sn_hinge", "resnet_sn")  # the GANs (a generator and a D)
HINGE_VARIANTS = ("sn_hinge", "resnet_sn")  # trained with the hinge loss
BACKBONES = ("densenet121", "resnet50", "vgg16")  # ImageNet backbones (pretrained weights)
ARCHS = ("resnet_small", "resnet18", "resnet34", *BACKBONES)  # train.arch
LABELS = {0: "normal", 1: "pneumonia"}  # label value -> class name
