"""The channel registry (app/realtime/channels.py): features' channels by name prefix."""
import pytest

from app.realtime.channels import Channel, Registry


def _channel(prefix: str) -> Channel:
    return Channel(prefix, authorize=lambda name: None, on_connect=lambda name, joined: None)


def test_two_features_cannot_claim_overlapping_channel_prefixes(app):
    registry = Registry(app)
    registry.add_channel(_channel("s-"))
    for prefix in ("s-", "s-x", "s"):
        with pytest.raises(ValueError, match="overlaps"):
            registry.add_channel(_channel(prefix))
    registry.add_channel(_channel("c-"))
    assert registry.channel("s-abc").prefix == "s-" and registry.channel("c-abc").prefix == "c-"
    assert registry.channel("x-abc") is None and registry.channel("user:1") is None


def test_only_a_streams_channel_has_viewers_to_count_and_its_count_renders_without_an_app_context(app):
    """What the hub's presence tick asks, on its own thread: one person's feeds, an OBS
    overlay, a call's two pages and signaling inboxes have no audience."""
    audience = app.extensions["realtime_channels"].audience
    for name in ("c-abc", "user:1", "overlay:1", "signal:1:fan", "auth:session:1", "x-abc"):
        assert audience(name) is None, name
    assert audience("s-abc")(1234) == '<span id="viewer-count" hx-swap-oob="true">1,234 watching</span>'
