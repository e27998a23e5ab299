import pytest
from redis import Redis
from rq import Queue, SimpleWorker

from app import jobs
from app.extensions import db
from tests.helpers import log_in
from tests.push.helpers import Device
from tests.push.receiver import PushReceiver


@pytest.fixture()
def receiver():
    server = PushReceiver().start()
    yield server
    server.stop()


@pytest.fixture()
def queue(ctx, services):
    """This run's job queue, emptied before the test (jobs other tests left are not ours to run)."""
    q = Queue(jobs.queue_name(), connection=Redis.from_url(services[1]))
    q.empty()
    yield q
    q.empty()


@pytest.fixture()
def run_jobs(queue):
    """Run the queued jobs the way worker.py does (a real RQ worker, burst mode)."""
    def _run():
        db.session.commit()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    return _run


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
