from mlflow import MlflowClient

from fourds.config import PromotionConfig, TrackingConfig
from fourds.registry.aliases import move_alias
from fourds.registry.promotion import promote_if_better
from fourds.registry.status import domain_status, render_status_table


def test_status_lists_each_domain_with_champion_and_challenger(workspace, bare_version):
    usps_1 = bare_version("fourds-student-usps", {"test_accuracy": 0.91, "onnx_size_mb": 4.25,
                                                  "onnx_parity_max_abs_diff": 0.0, "source_teacher_test_accuracy": 0.3})
    # As the register step tags it: the domain holds 40 unlabelled images, training used 30 of them.
    for field, count in (("data_unlabelled_images", "40"), ("data_unlabelled_images_used", "30")):
        MlflowClient().set_model_version_tag("fourds-student-usps", usps_1, f"fourds.{field}", count)
    promote_if_better("fourds-student-usps", usps_1, PromotionConfig(), echo=False)
    usps_2 = bare_version("fourds-student-usps", {"test_accuracy": 0.89})
    move_alias("fourds-student-usps", "challenger", usps_2, who="ci", reason="new version")
    bare_version("fourds-student-sketch", {"test_accuracy": 0.5})
    bare_version("fourds-teacher", {"test_accuracy": 0.99})  # not a student: not listed

    rows = domain_status(TrackingConfig())

    assert [row.domain for row in rows] == ["sketch", "usps"]
    sketch, usps = rows
    assert (sketch.num_versions, sketch.champion_version, sketch.challenger_version) == (1, None, None)
    assert (usps.num_versions, usps.champion_version, usps.challenger_version) == (2, usps_1, usps_2)
    assert usps.champion_accuracy == 0.91 and usps.champion_onnx_size_mb == 4.25
    assert usps.challenger_accuracy == 0.89
    assert usps.champion_since is not None
    assert (usps.champion_unlabelled_images, usps.champion_unlabelled_images_used) == (40, 30)
    assert (sketch.champion_unlabelled_images, sketch.champion_unlabelled_images_used) == (None, None)

    table = render_status_table(rows).splitlines()
    assert table[0].split()[:4] == ["domain", "model", "versions", "champion"]
    assert table[2].split()[:6] == ["usps", "fourds-student-usps", "2", "1", "0.9100", "4.25"]
    assert table[1].split()[3:6] == ["-", "-", "-"]
    assert table[0].endswith("unlabelled used/all")
    assert table[2].split()[-1] == "30/40" and table[1].split()[-1] == "-"


def test_status_of_an_empty_registry(workspace):
    assert domain_status() == []
    assert render_status_table([]) == "no student models registered yet"
