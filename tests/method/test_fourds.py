import pytest
import torch
from torch import nn

from fourds.config import FourDsConfig
from fourds.method import FourDs
from fourds.models import build_classifier, default_stage_names

RESNET_STAGES = ["layer1", "layer2", "layer3", "layer4"]


def _four_ds(teacher, student, student_arch, side):
    return FourDs(
        teacher,
        student,
        FourDsConfig(),
        teacher_stages=RESNET_STAGES,
        student_stages=default_stage_names(student_arch),
        input_shape=(3, side, side),
    )


def _sgd_step(method, images, labels):
    """What the trainer does: each group's objective into that group's parameters only, then step."""
    groups = method.parameter_groups()
    optimisers = {name: torch.optim.SGD(params, lr=0.1) for name, params in groups.items()}
    output = method.training_step(images, labels)
    for name, objective in output.objectives.items():
        torch.autograd.backward(objective, inputs=groups[name])
    for optimiser in optimisers.values():
        optimiser.step()
    return output


def _snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _all_changed(module, before):
    return all(not torch.equal(p, before[name]) for name, p in module.named_parameters())


@pytest.fixture(scope="module")
def method():
    torch.manual_seed(0)
    teacher = build_classifier("resnet18", 3)
    student = build_classifier("mobilenet_v3_small", 3)
    return _four_ds(teacher, student, "mobilenet_v3_small", 64)


def test_one_step_trains_adapters_student_gate_and_projections_but_not_the_teacher(method):
    torch.manual_seed(1)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    method.train()
    teacher_before = _snapshot(method.adapted_teacher.teacher)
    adapters_before = _snapshot(method.adapted_teacher.adapters)
    student_before = _snapshot(method.student)
    fusion_before = _snapshot(method.fusion)
    assert any(isinstance(p, nn.Conv2d) for p in method.fusion.projections)

    output = _sgd_step(method, images, labels)

    assert set(output.losses) == {"adapters/ce", "adapters/kd", "adapters/im", "student/ce", "student/kd", "student/fusion"}
    assert all(torch.isfinite(loss) for loss in output.losses.values())
    # The default adapters also train the teacher's stem, first stage and BatchNorm scale and shift (the adapter
    # study); every other teacher weight stays bit-identical.
    owned = {id(p) for p in method.parameter_groups()["adapters"]}
    for name, p in method.adapted_teacher.teacher.named_parameters():
        assert torch.equal(p, teacher_before[name]) == (id(p) not in owned), name
    assert any(id(p) in owned for p in method.adapted_teacher.teacher.parameters())
    assert _all_changed(method.adapted_teacher.adapters, adapters_before)
    assert _all_changed(method.fusion.gate, {k.removeprefix("gate."): v for k, v in fusion_before.items()})
    # At 64 px the student's stage maps are 16, 8, 4, 2 pixels wide. The 2-D DFT of a 2x2
    # map is real (phases 0 or pi, no gradient), so the last projection cannot learn.
    for index in (0, 1, 2):
        assert not torch.equal(method.fusion.projections[index].weight, fusion_before[f"projections.{index}.weight"])
    changed = [not torch.equal(p, student_before[name]) for name, p in method.student.named_parameters()]
    assert sum(changed) / len(changed) > 0.9  # SGD moves (nearly) every student weight in one step
    assert 0.0 < output.extras["fusion/gate_mean"] < 1.0
    assert {f"adapters/a0/{stage}" for stage in RESNET_STAGES} <= set(output.extras)


def test_each_objective_reaches_only_its_own_group(method):
    groups = method.parameter_groups()
    output = method.training_step(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    for name, other in (("adapters", "student"), ("student", "adapters")):
        grads = torch.autograd.grad(output.objectives[name], groups[other], allow_unused=True)
        assert all(g is None for g in grads), f"the {name} objective reaches {other} parameters"


def test_the_adapted_teacher_is_evaluated_as_a_plain_classifier(method):
    models = method.evaluated_models()
    assert set(models) == {"student", "adapted_teacher"}
    method.eval()
    with torch.no_grad():
        logits = models["adapted_teacher"](torch.randn(2, 3, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 3)


def test_train_mode_keeps_the_frozen_teacher_as_declared(method):
    method.train()
    teacher = method.adapted_teacher.teacher
    assert not teacher.training and teacher.bn1.training  # bn_mode "adapt"
    assert method.student.training and method.fusion.training
    method.eval()
    assert not any(m.training for m in method.modules())


def test_construction_leaves_batchnorm_statistics_alone_and_warns_when_no_stage_is_wide_enough():
    torch.manual_seed(0)
    teacher, student = build_classifier("resnet18", 3), build_classifier("resnet18", 3)
    before = teacher.bn1.running_mean.clone(), student.bn1.running_mean.clone()
    with pytest.warns(UserWarning, match="fusion-activation is inert"):
        method = _four_ds(teacher, student, "resnet18", 8)  # stage maps 2, 1, 1, 1 px at 8 px
    assert method.fusion_stages == [3]
    assert torch.equal(teacher.bn1.running_mean, before[0]) and torch.equal(student.bn1.running_mean, before[1])


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return build_classifier("resnet50", 4)


@pytest.mark.parametrize("student_arch", ["mobilenet_v3_small", "resnet18"])
def test_teacher_and_student_of_different_widths(resnet50, student_arch):
    method = _four_ds(resnet50, build_classifier(student_arch, 4), student_arch, 64).train()
    assert method.adapted_teacher.stage_channels == [256, 512, 1024, 2048]
    assert all(isinstance(p, nn.Conv2d) for p in method.fusion.projections)
    output = _sgd_step(method, torch.randn(2, 3, 64, 64), torch.tensor([1, 3]))
    assert all(torch.isfinite(loss) for loss in output.losses.values())
    assert output.logits.shape == (2, 4)


def test_stage_lists_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one to one"):
        FourDs(
            nn.Identity(),
            nn.Identity(),
            FourDsConfig(),
            teacher_stages=RESNET_STAGES,
            student_stages=RESNET_STAGES[:3],
        )


def test_fusion_gradient_reaches_the_student_at_the_benchmark_input_size():
    """32 px with the no_maxpool stem: layer4 is 2x2 (real spectrum, no phase gradient) and is left out;
    layer1..layer3 get a non-zero gradient from L_FA alone."""
    torch.manual_seed(0)
    teacher = build_classifier("resnet18", 3, stem="no_maxpool")
    student = build_classifier("resnet18", 3, stem="no_maxpool")
    method = _four_ds(teacher, student, "resnet18", 32).train()
    assert method.fusion_stages == [0, 1, 2]
    output = method.training_step(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    fusion = output.losses["student/fusion"]
    for stage in ("layer1", "layer2", "layer3"):
        params = list(getattr(student, stage).parameters())
        grads = torch.autograd.grad(fusion, params, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), stage


def test_the_adapters_objective_weighs_kd_and_information_maximisation_by_their_own_weights():
    from fourds.method.losses import information_maximisation

    torch.manual_seed(0)
    teacher, student = build_classifier("resnet18", 3), build_classifier("resnet18", 3)
    config = FourDsConfig(adapter_im_weight=0.7, adapter_kd_weight=0.3, kd_weight=2.0, adapter_bn_affine=True,
                          adapter_stages=[3])
    method = FourDs(teacher, student, config, teacher_stages=RESNET_STAGES, student_stages=RESNET_STAGES,
                    input_shape=(3, 32, 32)).train()
    images, labels, unlabelled = torch.randn(2, 3, 32, 32), torch.tensor([0, 2]), torch.randn(3, 3, 32, 32)
    output = method.training_step(images, labels, unlabelled)
    losses = output.losses
    assert torch.allclose(output.objectives["adapters"],
                          losses["adapters/ce"] + 0.3 * losses["adapters/kd"] + 0.7 * losses["adapters/im"])
    assert torch.allclose(output.objectives["student"], losses["student/ce"] + config.kd_weight * losses["student/kd"]
                          + config.fusion_weight * losses["student/fusion"])
    # On all five rows (labelled and unlabelled), from the adapted teacher's logits (train-mode BatchNorm
    # normalises with the batch's statistics, so a second forward gives the same logits).
    with torch.no_grad():
        teacher_logits, _ = method.adapted_teacher(torch.cat([images, unlabelled]))
        assert torch.allclose(losses["adapters/im"], information_maximisation(teacher_logits), atol=1e-6)
        assert not torch.allclose(losses["adapters/im"], information_maximisation(teacher_logits[:2]), atol=1e-3)
    assert len(method.adapted_teacher.adapters) == 1
    assert set(map(id, method.parameter_groups()["adapters"])) == set(map(id, method.adapted_teacher.trainable_parameters()))
