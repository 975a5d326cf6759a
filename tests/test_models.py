"""Model shapes: one small CNN for every image shape, an MLP for vectors, ResNets, many heads."""

from __future__ import annotations

import pytest
import torch
import torchvision

from hackrobust.models import auto, mlp, resnet, small_cnn
from hackrobust.models.invariance import SymmetrizedTrunk, swap_halves


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 28, 56), (3, 32, 64), (1, 64, 64)])
@pytest.mark.parametrize("heads", [1, 3])
def test_small_cnn_takes_every_image_shape(shape, heads):
    net = small_cnn(shape, num_classes=3, num_heads=heads)
    assert net(torch.rand(4, *shape)).shape == (4, heads, 3)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 28, 56), (3, 32, 64)])
def test_small_cnn_with_three_blocks(shape):
    net = small_cnn(shape, num_classes=2, num_heads=2, width=8, blocks=3, pool=(3, 3))
    convs = [m for m in net.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32]
    assert net(torch.rand(4, *shape)).shape == (4, 2, 2)


def test_small_cnn_rejects_blocks_the_image_cannot_take():
    with pytest.raises(ValueError, match="fewer blocks"):
        small_cnn((1, 8, 8), num_classes=2, blocks=4)
    with pytest.raises(ValueError, match="at least one"):
        small_cnn((1, 28, 28), num_classes=2, blocks=0)


def test_auto_cnn_blocks():
    net = auto((1, 28, 28), 2, cnn_width=8, cnn_blocks=3)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.trunk.modules()) == 6
    grid = next(m for m in net.trunk.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d))
    assert grid.output_size == (3, 3)  # what is left of 28x28


def test_auto_cnn_hidden_sets_the_features_the_heads_read():
    net = auto((1, 28, 28), 2, num_heads=2, cnn_width=8, cnn_hidden=32)
    features = net.trunk(torch.zeros(3, 1, 28, 28))
    assert features.shape == (3, 32)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 2, 2)


def test_channels_last_cnn_computes_the_same_function_in_nhwc_memory():
    torch.manual_seed(0)
    plain = auto((1, 28, 28), num_classes=2, num_heads=2, cnn_blocks=3)
    fast = auto((1, 28, 28), num_classes=2, num_heads=2, cnn_blocks=3, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = torch.randn(8, 1, 28, 28)
    plain.eval(), fast.eval()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)


def test_auto_picks_by_input_shape():
    assert isinstance(auto((64,), 2).trunk[0], torch.nn.Flatten)
    assert isinstance(auto((1, 28, 56), 2).trunk[0][0], torch.nn.Conv2d)
    with pytest.raises(ValueError, match="vectors"):
        auto((5, 5), 2)


def test_mlp_for_vectors():
    assert mlp((2,), 2, num_heads=2)(torch.rand(5, 2)).shape == (5, 2, 2)


def test_heads_are_independent_functions():
    net = small_cnn((1, 28, 28), num_classes=2, num_heads=2)
    out = net(torch.rand(3, 1, 28, 28))
    assert not torch.allclose(out[:, 0], out[:, 1])


@pytest.mark.parametrize(("depth", "shape"), [(18, (1, 28, 56)), (50, (3, 32, 32))])
def test_resnet_trunks(depth, shape):
    net = resnet(shape, num_classes=2, depth=depth, num_heads=2).eval()
    assert net(torch.rand(2, *shape)).shape == (2, 2, 2)


def test_resnet_loads_a_local_torchvision_state_dict(tmp_path):
    source = torchvision.models.resnet18(weights=None, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    net = resnet((3, 224, 224), num_classes=2, depth=18, weights_path=str(tmp_path / "r18.pth"))
    torch.testing.assert_close(net.trunk.layer4[0].conv1.weight, source.layer4[0].conv1.weight)


def test_resnet_rejects_a_wrong_weights_file(tmp_path):
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not fit"):
        resnet((3, 64, 64), 2, depth=18, weights_path=str(tmp_path / "bad.pth"))
    with pytest.raises(FileNotFoundError, match="model.weights_path"):
        resnet((3, 64, 64), 2, depth=18, weights_path=str(tmp_path / "absent.pth"))


def test_swap_halves_symmetry_makes_every_head_invariant():
    torch.manual_seed(0)
    net = auto((1, 28, 56), num_classes=2, num_heads=2, symmetry="swap_halves").eval()
    x = torch.rand(5, 1, 28, 56)
    torch.testing.assert_close(net(x), net(swap_halves(x)))
    # Still a function of the content: other images give other logits.
    assert not torch.allclose(net(x), net(torch.rand(5, 1, 28, 56)))
    # Without the symmetry the same trunk tells the sides apart.
    plain = auto((1, 28, 56), num_classes=2, num_heads=2).eval()
    assert not torch.allclose(plain(x), plain(swap_halves(x)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_halves_apart_is_invariant_and_convolves_each_half(channels_last):
    torch.manual_seed(0)
    net = auto(
        (1, 28, 56), 2, 2, cnn_blocks=3, symmetry="swap_halves", halves_apart=True,
        channels_last=channels_last,
    ).eval()  # fmt: skip
    widths = []
    first_conv = net.trunk.trunk[0][0]
    first_conv.register_forward_hook(lambda module, args, out: widths.append(args[0].shape))
    x = torch.rand(5, 1, 28, 56)
    torch.testing.assert_close(net(x), net(swap_halves(x)))
    assert widths[0] == (10, 1, 28, 28)  # the five images' ten halves, once
    assert not torch.allclose(net(x), net(torch.rand(5, 1, 28, 56)))
    # The same weights under the same names as the averaged trunk: checkpoints load either way.
    averaged = auto((1, 28, 56), 2, 2, cnn_blocks=3, symmetry="swap_halves").eval()
    averaged.load_state_dict(net.state_dict())


def test_halves_apart_needs_a_conv_trunk():
    with pytest.raises(ValueError, match="halves_apart needs the small CNN"):
        auto((56,), 2, symmetry="swap_halves", halves_apart=True)


def test_symmetry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown symmetry 'mirror'"):
        auto((1, 28, 56), 2, symmetry="mirror")
    with pytest.raises(ValueError, match="even image width, got 27"):
        auto((1, 28, 27), 2, symmetry="swap_halves")(torch.rand(2, 1, 28, 27))


def test_random_side_datasets_declare_the_swap_symmetry(tmp_path):
    from helpers import compose_train

    for name in ("mnist_constant_image_random_row", "mnist_uniform_color_low_mix_rate"):
        cfg = compose_train([f"dataset={name}"], tmp_path)
        assert cfg.dataset.symmetry == cfg.model.symmetry == "swap_halves"
    assert compose_train(["dataset=mnist_cc"], tmp_path).model.symmetry is None


def test_the_halves_candidate_sees_halves_apart_only_where_a_symmetry_is_declared(tmp_path):
    from hydra.utils import instantiate

    from helpers import compose_train

    def trunk(dataset):
        cfg = compose_train(["experiment=flagship_fast_halves", f"dataset={dataset}"], tmp_path)
        assert cfg.model.halves_apart is True
        shape = (1, 28, 56) if "random_row" in dataset else (1, 28, 28)
        return instantiate(cfg.model)(input_shape=shape, num_classes=2, num_heads=2).trunk

    assert trunk("mnist_uniform_color_random_row").conv_count is not None
    assert not isinstance(trunk("mnist_sum"), SymmetrizedTrunk)


# --- a pretrained backbone where the hackathon allows one (humans) ------------------------------


def test_efficientnet_lite0_heads_read_imagenet_features_of_any_scaling():
    from hackrobust.models.efficientnet_lite import efficientnet_lite0

    torch.manual_seed(0)
    net = efficientnet_lite0((1, 32, 32), num_classes=2, num_heads=2).train()
    x = torch.rand(4, 1, 32, 32)
    assert net(x).shape == (4, 2, 2)
    # Each image is mapped to [0, 1] by its own range: a dataset's standardisation is undone.
    torch.testing.assert_close(net(x), net(3 * x - 1), rtol=1e-4, atol=1e-4)
    # Frozen: no gradient reaches the backbone, and training mode leaves its statistics alone.
    before = {k: v.clone() for k, v in net.trunk.features.state_dict().items()}
    net(x).sum().backward()
    assert all(p.grad is None for p in net.trunk.features.parameters())
    assert net.heads.weight.grad is not None
    assert all(torch.equal(v, net.trunk.features.state_dict()[k]) for k, v in before.items())
    # Still frozen where a method turns every parameter's requires_grad back on (D-BAT).
    net.requires_grad_(True)
    net(x).sum().backward()
    assert all(p.grad is None for p in net.trunk.features.parameters())
    # An input that wants a gradient (attribution maps) gets one through the backbone.
    pixels = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(net(pixels)[:, 0, 1].sum(), pixels)
    assert gradient.abs().sum() > 0


def test_the_hackathon_allows_the_pretrained_backbone_on_humans_only(tmp_path):
    from hydra.utils import instantiate

    from helpers import compose_train

    def build(dataset):
        cfg = compose_train([f"dataset={dataset}", "model=efficientnet_lite0"], tmp_path)
        return instantiate(cfg.model)(input_shape=(1, 32, 32), num_classes=2)

    assert build("humans").heads.in_features == 1280
    with pytest.raises(ValueError, match="forbid pretrained models"):
        build("mnist_cc")
    with pytest.raises(ValueError, match="forbid pretrained models"):
        build("hackathon_dir")
