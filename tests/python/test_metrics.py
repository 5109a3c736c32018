"""The Prometheus page (``metrics=True``): parsed as Prometheus parses it, counting what
happened, on the native server and through ASGI, outside and under the base path."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from helpers import guest
from prometheus_client.parser import text_string_to_metric_families

from kernia import ConfigurationError, RateLimitOptions
from kernia.integrations.fastapi import metrics_endpoint
from kernia.plugins.anonymous import anonymous
from kernia.types.init_options import RateLimitRule

from conftest import BASE


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def sample(found, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def _history(b) -> None:
    """Two guests created (the third refused by the limiter), one converted, one 404."""
    await guest(b)
    await b.sign_up()
    b.cookies.clear()
    await guest(b)
    b.cookies.clear()
    assert (await b.post("/sign-in/anonymous", {})).status_code == 429
    assert (await b.get("/no-such-route")).status_code == 404


def _check(text: str) -> None:
    found = samples(text)
    route = {"method": "POST", "route": "/sign-in/anonymous"}
    assert sample(found, "kernia_http_requests_total", **route, status="200") == 2
    assert sample(found, "kernia_http_requests_total", **route, status="429") == 1
    assert sample(found, "kernia_http_requests_total", route="unmatched", status="404") == 1
    assert sample(found, "kernia_http_request_duration_seconds_count", **route) == 3
    assert sample(found, "kernia_http_request_duration_seconds_bucket", **route, le="+Inf") == 3
    assert sample(found, "kernia_http_request_duration_seconds_sum", **route) > 0
    assert sample(found, "kernia_guests_total", event="created") == 2
    assert sample(found, "kernia_guests_total", event="converted") == 1
    assert sample(found, "kernia_rate_limited_total") == 1
    assert sample(found, "kernia_database_unavailable_total") == 0


def _options(**kw):
    return dict(
        plugins=[anonymous(rate_limit=RateLimitRule(window=60, max=2))],
        rate_limit=RateLimitOptions(enabled=True),
        metrics=True,
        **kw,
    )


async def test_metrics_count_what_happened_on_either_transport(env, browser_for, transport):
    auth = env.make(**_options())
    b = browser_for(auth)
    await _history(b)
    if transport == "native":
        url = b.client.base_url
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{url}/metrics")
    else:
        # The ASGI app served on its own answers the path too (kernia serve --asgi).
        app = auth.router.mount()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            page = await client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    _check(page.text)
    assert auth.metrics_text().startswith("# HELP kernia_http_requests_total")


async def test_metrics_under_the_base_path_and_in_an_app(env, browser_for):
    auth = env.make(**_options(metrics_path="/api/auth/metrics"))
    b = browser_for(auth)
    await _history(b)
    page = await b.get("/metrics")
    assert page.status_code == 200
    _check(page.text)

    app = FastAPI()
    app.mount("/api/auth", auth.router.mount())
    app.add_route("/ops/metrics", metrics_endpoint(auth))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert "kernia_guests_total" in (await client.get("/ops/metrics")).text
        assert (await client.get("/api/auth/metrics")).status_code == 200


def test_metrics_are_off_unless_asked(env):
    auth = env.make(plugins=[anonymous()])
    with pytest.raises(ConfigurationError, match=r"metrics=True"):
        auth.metrics_text()
    with pytest.raises(ConfigurationError, match="metrics"):
        metrics_endpoint(auth)
    with pytest.raises(ConfigurationError, match="metrics_path"):
        env.make(metrics=True, metrics_path="metrics")
