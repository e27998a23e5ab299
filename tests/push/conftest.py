import pytest

from tests.helpers import log_in
from tests.push.helpers import Device
from tests.push.receiver import PushReceiver


@pytest.fixture()
def receiver():
    server = PushReceiver().start()
    yield server
    server.stop()


@pytest.fixture()
def subscribe(new_client, receiver):
    """subscribe(user, name, topics) → Device: a browser of `user` subscribed through the API."""
    def _subscribe(user, name, topics):
        client = new_client()
        token = log_in(client, user)
        device = Device(receiver.endpoint(name))
        resp = client.post("/api/me/push/subscriptions", json=device.subscription(topics),
                           headers={"X-CSRFToken": token})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        device.client, device.csrf = client, token
        return device
    return _subscribe
