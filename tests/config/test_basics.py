from trimesh.config import ConfigObject, Duration, RouteRule, load_text, parse_duration


def test_duration_parses_docs_forms():
    assert parse_duration("10s") == 10.0
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("100ms") == 0.1
    assert parse_duration("3m") == 180.0


def test_reviews_default_loads():
    (obj,) = load_text(
        "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: reviews-default\n"
        "spec:\n  destination:\n    name: reviews\n  route:\n  - labels:\n      version: v1\n    weight: 100\n"
    )
    assert isinstance(obj, ConfigObject)
    assert isinstance(obj.spec, RouteRule)
    assert obj.key == ("RouteRule", "default", "reviews-default")
    assert obj.spec.route[0].labels == {"version": "v1"}
    assert obj.to_dict()["spec"]["route"] == [{"labels": {"version": "v1"}, "weight": 100}]
    assert isinstance(obj.spec.route[0].weight, int) and not isinstance(obj.spec.route[0].weight, Duration)


def test_dotted_destination_names_name_the_same_service():
    from trimesh.config import IstioService, resolve_service

    full = "reviews.default.svc.cluster.local"
    assert resolve_service(IstioService(name="reviews"), "default") == full
    assert resolve_service(IstioService(name="reviews.default"), "other") == full
    assert resolve_service(IstioService(name=full), "other") == full
    assert resolve_service(IstioService(name="reviews"), "other") == "reviews.other.svc.cluster.local"
