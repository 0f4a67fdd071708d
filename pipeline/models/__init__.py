"""The model zoo and its registry: architectures by name, each ``build(input_shape, classes, knobs)``.

| name | made for | notes |
| --- | --- | --- |
| shallownet | any, 32x32 in the book | one CONV layer |
| lenet | 28x28 | two CONV-POOL blocks, FC(500) |
| minivggnet | 32x32-64x64 | VGG blocks with BN and dropout |
| mnist_convnet | 28x28x1 | the Keras "Simple MNIST convnet" example |
| alexnet | 227x227x3 | BN + dropout + L2 2e-4, as in the book |
| minigooglenet | 32x32 | CIFAR-style inception/downsample modules |
| deepergooglenet | 64x64 | Tiny-ImageNet GoogLeNet, L2 5e-4 |
| resnet | 32x32 (stem cifar) or 64x64 (stem tiny) | pre-activation bottlenecks, L2 1e-4 |

This package is the one registry of names that params accept (``train.model``,
``backbone.name``). Importing it imports no Keras: :func:`pipeline.models.zoo.build` loads an architecture's
module when it is asked for, and :mod:`pipeline.models.backbones` builds the ``keras.applications`` ones.
"""

from __future__ import annotations

#: ``train.model`` name -> module of this package holding a builder of that name.
ARCHITECTURES: dict[str, str] = {
    "shallownet": "shallownet",
    "lenet": "lenet",
    "minivggnet": "minivggnet",
    "mnist_convnet": "mnist_convnet",
    "alexnet": "alexnet",
    "minigooglenet": "googlenet",
    "deepergooglenet": "googlenet",
    "resnet": "resnet",
}

#: name in params -> (constructor in keras.applications, module holding preprocess_input,
#: default square input size)
BACKBONES: dict[str, tuple[str, str, int]] = {
    "vgg16": ("VGG16", "vgg16", 224),
    "vgg19": ("VGG19", "vgg19", 224),
    "resnet50": ("ResNet50", "resnet", 224),
    "resnet101": ("ResNet101", "resnet", 224),
    "resnet152": ("ResNet152", "resnet", 224),
    "resnet50v2": ("ResNet50V2", "resnet_v2", 224),
    "resnet101v2": ("ResNet101V2", "resnet_v2", 224),
    "resnet152v2": ("ResNet152V2", "resnet_v2", 224),
    "inceptionv3": ("InceptionV3", "inception_v3", 299),
    "inceptionresnetv2": ("InceptionResNetV2", "inception_resnet_v2", 299),
    "xception": ("Xception", "xception", 299),
    "mobilenet": ("MobileNet", "mobilenet", 224),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2", 224),
    "mobilenetv3small": ("MobileNetV3Small", "mobilenet_v3", 224),
    "mobilenetv3large": ("MobileNetV3Large", "mobilenet_v3", 224),
    "densenet121": ("DenseNet121", "densenet", 224),
    "densenet169": ("DenseNet169", "densenet", 224),
    "densenet201": ("DenseNet201", "densenet", 224),
    "nasnetmobile": ("NASNetMobile", "nasnet", 224),
    "nasnetlarge": ("NASNetLarge", "nasnet", 331),
    **{f"efficientnetb{i}": (f"EfficientNetB{i}", "efficientnet", s)
       for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    **{f"efficientnetv2{v.lower()}": (f"EfficientNetV2{v}", "efficientnet_v2", s)
       for v, s in (("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384), ("M", 480),
                    ("L", 480))},
    **{f"convnext{v.lower()}": (f"ConvNeXt{v}", "convnext", 224)
       for v in ("Tiny", "Small", "Base", "Large", "XLarge")},
}

#: Backbones that take a width multiplier ``alpha``.
WITH_ALPHA = {"mobilenet", "mobilenetv2", "mobilenetv3small", "mobilenetv3large"}



__all__ = ["ARCHITECTURES", "BACKBONES", "WITH_ALPHA"]
