"""resolve_corpus and iter_text: registered corpora, downloads, path corpora, streaming UTF-8."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scratchgpt.core import paths
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.data import CORPORA, CorpusSource, iter_text, resolve_corpus
from scratchgpt.data import corpus as corpus_module

SHAKESPEARE_SHA = CORPORA["tinyshakespeare"].sha256


@pytest.fixture
def no_local_copy(tmp_path, monkeypatch) -> Path:
    """$SCRATCHGPT_DATA points at an empty directory, so the corpus must come from the cache or a download."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SCRATCHGPT_DATA", str(empty))
    return empty


def serve(monkeypatch, payload: bytes) -> list[str]:
    """urlopen answers every URL with payload; returns the URLs asked for."""
    asked: list[str] = []

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        assert timeout is not None, "a download must not wait forever"
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


def test_tinyshakespeare_resolves_from_scratchgpt_data_with_its_sha256(shakespeare_text):
    corpus = resolve_corpus("tinyshakespeare")
    assert corpus.name == "tinyshakespeare"
    assert corpus.path == (Path(os.environ["SCRATCHGPT_DATA"]) / "tinyshakespeare.txt").resolve()
    assert corpus.sha256 == SHAKESPEARE_SHA
    assert corpus.size == len(shakespeare_text.encode("utf-8"))


def test_scratchgpt_data_may_list_several_directories(tmp_path, monkeypatch):
    shared = os.environ["SCRATCHGPT_DATA"]
    monkeypatch.setenv("SCRATCHGPT_DATA", os.pathsep.join([str(tmp_path / "nowhere"), "", shared]))
    assert resolve_corpus("tinyshakespeare").sha256 == SHAKESPEARE_SHA


def test_a_registered_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare.txt").write_text("To be, or not to be\n")
    monkeypatch.setenv("SCRATCHGPT_DATA", str(tmp_path))
    with pytest.raises(ScratchGPTError) as e:
        resolve_corpus("tinyshakespeare")
    message = str(e.value)
    assert str(tmp_path / "tinyshakespeare.txt") in message
    assert SHAKESPEARE_SHA[:12] in message
    assert "\n" not in message


def test_missing_corpus_that_cannot_be_downloaded_says_where_to_put_it(no_local_copy, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ScratchGPTError) as e:
        resolve_corpus("tinyshakespeare")
    message = str(e.value)
    assert "\n" not in message
    assert "could not be downloaded (network is unreachable)" in message
    assert "$SCRATCHGPT_DATA" in message and str(paths.cache_dir() / "corpora") in message
    assert "--corpus PATH" in message
    assert list((paths.cache_dir() / "corpora").glob("*")) == []  # no temporary file left behind


def test_an_unreachable_url_is_a_one_line_error(no_local_copy, monkeypatch):
    # port 9 on loopback: nothing listens, so the connection is refused at once, without the network
    source = CorpusSource("tinyshakespeare.txt", "http://127.0.0.1:9/input.txt", SHAKESPEARE_SHA)
    monkeypatch.setitem(CORPORA, "tinyshakespeare", source)
    monkeypatch.setattr(corpus_module, "DOWNLOAD_TIMEOUT_S", 2.0)
    with pytest.raises(ScratchGPTError, match=r"could not be downloaded \(.+\); put tinyshakespeare.txt in") as e:
        resolve_corpus("tinyshakespeare")
    assert "\n" not in str(e.value)


def test_a_download_lands_hash_checked_in_the_cache(no_local_copy, monkeypatch, shakespeare_text):
    asked = serve(monkeypatch, shakespeare_text.encode("utf-8"))
    corpus = resolve_corpus("tinyshakespeare")
    assert asked == [CORPORA["tinyshakespeare"].url]
    assert corpus.path == (paths.cache_dir() / "corpora" / "tinyshakespeare.txt").resolve()
    assert corpus.sha256 == SHAKESPEARE_SHA
    assert [p.name for p in corpus.path.parent.iterdir()] == ["tinyshakespeare.txt"]
    # found in the cache from now on
    assert resolve_corpus("tinyshakespeare") == corpus
    assert len(asked) == 1


def test_a_download_with_the_wrong_bytes_is_refused_and_not_kept(no_local_copy, monkeypatch):
    serve(monkeypatch, b"<html>captive portal</html>")
    with pytest.raises(ScratchGPTError, match=f"expected {SHAKESPEARE_SHA[:12]}"):
        resolve_corpus("tinyshakespeare")
    assert list((paths.cache_dir() / "corpora").iterdir()) == []


def test_download_false_never_touches_the_network(no_local_copy, monkeypatch):
    asked = serve(monkeypatch, b"")
    with pytest.raises(ScratchGPTError, match=r"downloading is off; put tinyshakespeare.txt in \$SCRATCHGPT_DATA"):
        resolve_corpus("tinyshakespeare", download=False)
    assert asked == []


def test_a_path_corpus_is_named_after_its_stem_and_hashed(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text("roses are red\n")
    for given in (path, str(path)):
        corpus = resolve_corpus(given)
        assert corpus.name == "poems"
        assert corpus.path == path.resolve()
        assert corpus.sha256 == hashlib.sha256(b"roses are red\n").hexdigest()
        assert corpus.size == 14


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ScratchGPTError, match="neither a file nor a registered corpus"):
        resolve_corpus(tmp_path / "nope.txt")
    with pytest.raises(ScratchGPTError, match="'shakespeare'.*registered corpus \\(tinyshakespeare\\)"):
        resolve_corpus("shakespeare")
    with pytest.raises(ScratchGPTError, match="did you mean 'tinyshakespeare'\\?"):  # a typo of a registered name
        resolve_corpus("tinyshakespear")


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(ScratchGPTError, match="is a directory; give a UTF-8 text file"):
        resolve_corpus(tmp_path)


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.txt").touch()
    with pytest.raises(ScratchGPTError, match="is empty; give a UTF-8 text file"):
        resolve_corpus(tmp_path / "empty.txt")


def test_a_registered_name_wins_over_a_same_named_entry_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_corpus("tinyshakespeare").sha256 == SHAKESPEARE_SHA
    with pytest.raises(ScratchGPTError, match="is a directory"):
        resolve_corpus("./tinyshakespeare")


EMOJI_TEXT = "héllo 👋🏽 wörld 🇫🇷 ✓ naïve 日本語\n" * 5


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 64])
def test_iter_text_never_splits_a_multibyte_character(make_corpus, chunk_bytes):
    chunks = list(iter_text(make_corpus(EMOJI_TEXT), chunk_bytes=chunk_bytes))
    assert "".join(chunks) == EMOJI_TEXT
    # a split character would have raised (strict decoding) or shown up as U+FFFD
    assert all("\ufffd" not in chunk for chunk in chunks)
    # memory stays bounded: a chunk holds its block plus at most an unfinished character held back
    assert max(len(chunk.encode("utf-8")) for chunk in chunks) <= chunk_bytes + 3


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 1 << 22])
def test_invalid_utf8_names_the_offset_of_the_first_bad_byte(make_corpus, chunk_bytes):
    good = "naïve € ".encode()
    corpus = make_corpus(good + b"\xff" + "more €".encode() + b"\xfe")
    with pytest.raises(ScratchGPTError) as e:
        list(iter_text(corpus, chunk_bytes=chunk_bytes))
    message = str(e.value)
    assert f"bad byte at offset {len(good)}" in message
    assert str(corpus.path) in message and "--lossy" in message and "\n" not in message


@pytest.mark.parametrize("chunk_bytes", [1, 2, 1 << 22])
def test_a_character_cut_off_at_the_end_of_the_file_is_invalid(make_corpus, chunk_bytes):
    corpus = make_corpus(b"ab" + "€".encode()[:2])
    with pytest.raises(ScratchGPTError, match="bad byte at offset 2"):
        list(iter_text(corpus, chunk_bytes=chunk_bytes))


@pytest.mark.parametrize("chunk_bytes", [1, 3, 1 << 22])
def test_lossy_replaces_bad_bytes_with_the_replacement_character(make_corpus, chunk_bytes):
    raw = "naïve ".encode() + b"\xff\xfe" + "€!".encode() + "€".encode()[:2]
    corpus = make_corpus(raw)
    text = "".join(iter_text(corpus, chunk_bytes=chunk_bytes, lossy=True))
    assert text == raw.decode("utf-8", errors="replace") == "naïve \ufffd\ufffd€!\ufffd"
