"""A model download's progress as the dock and the CLI say it (``models.loading.download_reporter``, the
tqdm class handed to huggingface_hub's ``snapshot_download`` for its byte bars), and its cancel."""

import threading

import pytest

from model_backend.models.loading import DownloadCancelled, download_reporter

GIB = 1024 ** 3


def test_bytes_of_total_are_said_and_throttled():
    said = []
    bar_class = download_reporter("org/model", said.append, None, every_s=0.0)
    bar = bar_class(total=8 * GIB, unit="B", disable=True)
    for _ in range(4):
        bar.update(GIB)
    bar.close()
    assert said[-1] == "Downloading org/model: 4.00 of 8.00 GiB (50 %)" and len(said) == 4
    quiet = []
    bar = download_reporter("org/model", quiet.append, None, every_s=3600.0)(total=GIB, unit="B", disable=True)
    for _ in range(10):
        bar.update(GIB // 10)
    assert len(quiet) == 1   # at most once per period


def test_a_bar_that_counts_files_says_nothing():
    said = []
    bar = download_reporter("org/model", said.append, None, every_s=0.0)(total=12, unit="it", disable=True)
    bar.update(3)
    assert said == []


def test_cancel_stops_the_download_at_its_next_bytes():
    cancel = threading.Event()
    bar = download_reporter("org/model", lambda m: None, cancel, every_s=0.0)(total=GIB, unit="B", disable=True)
    bar.update(1024)
    cancel.set()
    with pytest.raises(DownloadCancelled):
        bar.update(1024)
