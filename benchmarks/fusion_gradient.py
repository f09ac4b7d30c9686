"""How much of the student's gradient each 4Ds term gives, at initialisation, per setting.

    python -m benchmarks.fusion_gradient                      # the benchmark's digits setting
    python -m benchmarks.fusion_gradient --image-size 64      # PACS setting

Builds the benchmark's pair (ResNet-34 teacher, ResNet-18 student, ``no_maxpool`` stem),
runs one 4Ds training step on a fixed random batch, and back-propagates each term of the
student objective on its own: CE, kd_weight * KD and fusion_weight * L_FA. Prints the
gradient norm of each over all student parameters and over each student stage, for the
reference fusion settings (raw-angle MSE, every stage) and the product's (circular
distance, stages of at least 3x3). A mechanical check that the term can teach the student
anything, not an accuracy figure; no data is needed.
"""

from __future__ import annotations

import argparse
import json

import torch

from fourds.config import FourDsConfig, RunConfig
from fourds.method import build_method
from fourds.models import build_classifier

REFERENCE_FUSION = {"fusion_distance": "angle", "fusion_min_side": 1}
PRODUCT_FUSION = {"fusion_distance": "circular", "fusion_min_side": 3}


def gradient_shares(image_size: int, batch_size: int, fusion: dict, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    config = RunConfig.model_validate(
        {
            "model": {"teacher_arch": "resnet34", "student_arch": "resnet18", "stem": "no_maxpool"},
            "data": {"image_size": image_size},
            "fourds": FourDsConfig(**fusion).model_dump(),
        }
    )
    teacher = build_classifier("resnet34", 10, stem="no_maxpool")
    method = build_method("4ds", config, teacher=teacher).train()
    images = torch.randn(batch_size, 3, image_size, image_size)
    labels = torch.arange(batch_size) % 10
    out = method.training_step(images, labels)
    student = method.student
    terms = {
        "ce": out.losses["student/ce"],
        "kd": config.fourds.kd_weight * out.losses["student/kd"],
        "fusion": config.fourds.fusion_weight * out.losses["student/fusion"],
    }
    stages = ["layer1", "layer2", "layer3", "layer4"]
    report = {"fusion_stages": [stages[i] for i in method.fusion_stages], "terms": {}}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, list(student.parameters()), retain_graph=True, allow_unused=True)
        by_name = dict(zip([n for n, _ in student.named_parameters()], grads))
        def norm(prefix: str = "", by_name=by_name) -> float:
            selected = [g for n, g in by_name.items() if g is not None and n.startswith(prefix)]
            return float(torch.sqrt(sum((g**2).sum() for g in selected))) if selected else 0.0
        report["terms"][name] = {"value": round(float(term), 5), "grad_norm": norm()} | {
            f"grad_norm/{stage}": norm(stage + ".") for stage in stages
        }
    total = sum(entry["grad_norm"] for entry in report["terms"].values())
    for entry in report["terms"].values():
        entry["share_of_summed_norms"] = round(entry["grad_norm"] / total, 5) if total else 0.0
    report["gate_mean"] = method.fusion.gate_mean
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fusion_gradient", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    results = {
        label: gradient_shares(arguments.image_size, arguments.batch_size, fusion, arguments.seed)
        for label, fusion in (("reference", REFERENCE_FUSION), ("product", PRODUCT_FUSION))
    }
    print(json.dumps({"image_size": arguments.image_size, "batch_size": arguments.batch_size, **results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
