"""The pages' pure helpers: the ``next`` check, gallery query reading, chart geometry and a
bundle's evaluation figures."""

from __future__ import annotations

from landscape.web._auth import safe_next
from landscape.web._views import evaluation_figures, month_chart, read_gallery_query


def test_safe_next_keeps_local_paths_only() -> None:
    assert safe_next("/review?label=coast") == "/review?label=coast"
    for bad in (None, "", "review", "//evil.example", "/\\evil", "https://x.y/", "/a\nb", "\t/"):
        assert safe_next(bad) == "/", bad


def test_gallery_query_drops_empty_fields_and_keeps_a_share_url() -> None:
    wanted = read_gallery_query(
        {"label": "coast", "q": "", "min_confidence": "0.5", "cursor": "abc", "junk": "1"}
    )
    assert wanted.error is None
    assert wanted.filters is not None
    assert wanted.filters.label == "coast"
    assert wanted.filters.min_confidence == 0.5
    assert wanted.query.cursor == "abc"
    assert wanted.active == 2
    assert wanted.url_with(cursor=None) == "/?label=coast&min_confidence=0.5"
    assert wanted.url_with(cursor="n") == "/?label=coast&min_confidence=0.5&cursor=n"


def test_gallery_query_errors_are_messages() -> None:
    assert "min_confidence" in (read_gallery_query({"min_confidence": "2"}).error or "")
    assert "bounding box" in (read_gallery_query({"bbox": "1,2,3"}).error or "")
    assert "point" in (read_gallery_query({"near": "95,0,1"}).error or "")
    assert read_gallery_query({"media": "sound"}).filters is None


def test_month_chart_stacks_labels() -> None:
    chart = month_chart(
        {"2024-01": {"coast": 2, "forest": 1}, "2024-02": {"forest": 3}}, ["coast", "forest"]
    )
    assert chart is not None
    assert chart.peak == 3
    first = chart.bars[0]["parts"]
    assert [p["label"] for p in first] == ["coast", "forest"]
    assert abs(sum(p["h"] for p in first) - sum(p["h"] for p in chart.bars[1]["parts"])) < 0.1
    assert month_chart({}, []) is None


def test_evaluation_figures_read_what_the_bundle_has() -> None:
    classes = ["a", "b"]
    train_only = evaluation_figures({"test_acc": 0.9, "n_train": 10}, classes)
    assert ("Test accuracy", "90.0 %") in train_only["headline"]
    assert ("Training images", "10") in train_only["headline"]
    assert train_only["per_class"] == []
    assert train_only["confusion"] is None
    full = evaluation_figures(
        {
            "evaluation": {
                "accuracy": 0.75,
                "per_class": {"a": {"f1": 0.5}, "b": {"f1": 1.0}},
                "confusion_matrix": [[1, 1], [0, 2]],
            }
        },
        classes,
    )
    assert full["headline"][0] == ("Accuracy", "75.0 %")
    assert [r["f1"] for r in full["per_class"]] == [0.5, 1.0]
    assert full["confusion"] == [[1, 1], [0, 2]]
    assert evaluation_figures({"confusion_matrix": [[1]]}, classes)["confusion"] is None
    assert evaluation_figures(None, classes)["headline"] == []
