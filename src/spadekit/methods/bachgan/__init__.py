"""BachGAN (CVPR 2020): a photo from salient-object boxes, with retrieved background layouts.

Modules (each importable on its own; no OpenCV needed):

* :mod:`~spadekit.methods.bachgan.boxes`: :class:`Box`, the box-layout tensor (official construction
  and a clean one-hot one) and the user's JSON box files.
* :mod:`~spadekit.methods.bachgan.extract`: boxes from dataset maps (Cityscapes instance ids, ADE20K
  label maps, COCO-Stuff / toy-scene instance maps).
* :mod:`~spadekit.methods.bachgan.retrieval`: the memory bank of training layouts (our file format),
  class-pooled IoU retrieval and the retrieved layouts composed with the boxes.
* :mod:`~spadekit.methods.bachgan.generator`: the fusion of box layout and retrieved layouts, the SPADE
  trunk fed the fused map, the image and segmentation heads.
* :mod:`~spadekit.methods.bachgan.objective`: the generator and discriminator losses.
* :mod:`~spadekit.methods.bachgan.convert`: official checkpoints ↔ our networks.
"""

from spadekit.methods.bachgan.method import BACHGAN, BachGANOptions  # noqa: E402  (registers the method)

__all__ = ["BACHGAN", "BachGANOptions"]
