import pytest
import torch
import torch.nn.functional as F

from fourds.method import KnowledgeDistillation, Supervised, kd_loss
from fourds.models import build_classifier


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    return build_classifier("resnet18", 3), build_classifier("mobilenet_v3_small", 3)


def test_supervised_trains_its_group_on_cross_entropy(networks):
    _, model = networks
    method = Supervised(model, group="teacher")
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    output = method.training_step(images, labels)
    assert list(method.parameter_groups()) == ["teacher"] and method.parameter_groups()["teacher"]
    assert set(output.losses) == {"teacher/ce"} and set(output.objectives) == {"teacher"}
    assert output.objectives["teacher"] is output.losses["teacher/ce"]
    assert method.evaluated_models() == {"student": model}


def test_kd_combines_cross_entropy_and_tau_squared_kl_from_a_frozen_eval_teacher(networks):
    teacher, student = networks
    method = KnowledgeDistillation(teacher, student, temperature=4.0, kd_weight=0.5).train()
    assert not teacher.training and student.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert set(method.parameter_groups()) == {"student"}

    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    output = method.training_step(images, labels)
    with torch.no_grad():
        teacher_logits = teacher(images)
    assert torch.allclose(output.losses["student/kd"], kd_loss(output.logits, teacher_logits, 4.0), atol=1e-6)
    assert torch.allclose(output.losses["student/ce"], F.cross_entropy(output.logits, labels), atol=1e-6)
    assert torch.allclose(
        output.objectives["student"], output.losses["student/ce"] + 0.5 * output.losses["student/kd"]
    )
    assert method.evaluated_models() == {"student": student}
