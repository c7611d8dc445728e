import pytest
import torch

from overconf.models import MODELS, build_model


@pytest.mark.parametrize("arch", ["salem_cnn", "small_resnet", "resnet18", "efficientnet_b0", "fast_cifar"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_architectures_follow_the_dataset_shape(arch, shape):
    c, h, _ = shape
    m = build_model(arch, in_channels=c, num_classes=7, image_size=h).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        f = m.features(x)
        z = m(x)
    assert z.shape == (2, 7)
    assert f.shape == (2, m.head.in_features)
    assert torch.allclose(m.head(f), z, atol=1e-5)


def test_cifar_variants_keep_resolution_in_the_stem():
    r = build_model("resnet18", in_channels=3, num_classes=10, image_size=32)
    assert r.stem[0].kernel_size == (3, 3) and r.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in r.modules())
    e = build_model("efficientnet_b0", in_channels=3, num_classes=10, image_size=32)
    assert e.body[0][0].kernel_size == (3, 3) and e.body[0][0].stride == (1, 1)


def test_every_registered_architecture_is_tested():
    assert set(MODELS.names()) == {"salem_cnn", "small_resnet", "resnet18", "efficientnet_b0", "fast_cifar"}
