import urllib.error

import pytest

from ofahw.errors import UserError
from ofahw.space import weights


def test_offline_without_download_names_the_file():
    with pytest.raises(UserError, match="ofa_mbv3_d234_e346_k357_w1.2.*--weights"):
        weights.fetch_weights("ofa-mbv3-w1.2")


def test_download_failure_is_a_clear_error(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights.urllib.request, "urlopen", refuse)
    with pytest.raises(UserError, match="cannot download .*offline"):
        weights.fetch_weights("ofa-mbv3-w1.0", download=True)


def test_download_is_cached_and_checksummed(tmp_path, monkeypatch):
    source = tmp_path / "served"
    source.write_bytes(b"weights-bytes")
    monkeypatch.setitem(weights.ZOO, "ofa-proxyless", ("proxyless-test-file", source.as_uri()))
    path = weights.fetch_weights("ofa-proxyless", download=True)
    assert path.read_bytes() == b"weights-bytes"
    assert weights.fetch_weights("ofa-proxyless") == path  # cached: no download needed
    path.write_bytes(b"tampered")
    with pytest.raises(UserError, match="does not match its recorded SHA-256"):
        weights.fetch_weights("ofa-proxyless")
